-- 0003: fewer index writes per state change. Every index whose WHERE clause names
-- `state` is rewritten whenever a job changes state, so:
-- * jobs_occupying goes: a job that holds its subject is active, so subject exclusivity
--   is answered from jobs_active_subject (the few active jobs of one subject).
-- * the tag, chain group and parent indexes hold only jobs that have one: a job without
--   a tag no longer enters and leaves jobs_live_tag at each of its transitions.
-- Never edit this file once released.

DROP INDEX jobs_occupying;

DROP INDEX jobs_live_tag;
DROP INDEX jobs_live_group;
DROP INDEX jobs_live_parent;
CREATE INDEX jobs_live_tag ON jobs (tag, seq)
    WHERE tag IS NOT NULL AND state IN ('QUEUED', 'SCHEDULED', 'RUNNING');
CREATE INDEX jobs_live_group ON jobs (chain_group_id, seq)
    WHERE chain_group_id IS NOT NULL AND state IN ('QUEUED', 'SCHEDULED', 'RUNNING');
CREATE INDEX jobs_live_parent ON jobs (parent_job_id, seq)
    WHERE parent_job_id IS NOT NULL AND state IN ('QUEUED', 'SCHEDULED', 'RUNNING');
