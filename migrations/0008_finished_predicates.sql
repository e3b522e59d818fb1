-- 0008: the partial indexes that hold live or active jobs are keyed on `finished_at_ms`
-- instead of `state`. core sets `finished_at_ms` exactly when a job becomes terminal and
-- never clears it (asserted on every write in core's tx.rs), so `finished_at_ms IS NULL`
-- is "not terminal". The point is what an UPDATE touches: SQLite visits every partial
-- index whose predicate names a column the statement sets, and rewrites the entry when
-- the predicate holds before and after. A claim sets `state` (QUEUED to RUNNING) and so
-- rewrote, in place, the job's entries in the subject index and the tag, group and parent
-- indexes, which it does not change; with these predicates and an UPDATE that sets only
-- the columns that changed, a claim leaves them alone. The finished index follows, so
-- a claim does not visit it either. Never edit this file once released.

DROP INDEX jobs_active_subject;
CREATE INDEX jobs_active_subject ON jobs (subject_key, seq)
    WHERE finished_at_ms IS NULL OR reap_pending = 1;

DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (seq, finished_at_ms)
    WHERE finished_at_ms IS NOT NULL AND reap_pending = 0;

DROP INDEX jobs_live_tag;
CREATE INDEX jobs_live_tag ON jobs (tag, seq) WHERE tag IS NOT NULL AND finished_at_ms IS NULL;

DROP INDEX jobs_live_group;
CREATE INDEX jobs_live_group ON jobs (chain_group_id, seq)
    WHERE chain_group_id IS NOT NULL AND finished_at_ms IS NULL;

DROP INDEX jobs_live_parent;
CREATE INDEX jobs_live_parent ON jobs (parent_job_id, seq)
    WHERE parent_job_id IS NOT NULL AND finished_at_ms IS NULL;
