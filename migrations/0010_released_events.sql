-- 0010: a job an event has released leaves `jobs_event_waiters`. Before, the index held
-- every waiting job with an event, released or not, and `event_waiters` skipped the
-- released ones row by row. A released job may wait on in the index for a long time (its
-- queue paused, its workers busy), and an event of a million jobs is released in rounds
-- of a few thousand, so each round stepped over all the jobs released before it: the
-- release was quadratic. The query already asks `event_released = 0`, word for word, so
-- the planner sees that it implies this WHERE. The release's UPDATE, which sets
-- `event_released`, now removes the entry, and the claim that follows no longer visits
-- the index. Never edit this file once released.

DROP INDEX jobs_event_waiters;
CREATE INDEX jobs_event_waiters ON jobs (wait_for_event, seq)
    WHERE state IN ('QUEUED', 'SCHEDULED') AND wait_for_event IS NOT NULL AND event_released = 0;
