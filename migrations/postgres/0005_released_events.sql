-- 0005: a job an event has released leaves `jobs_event_waiters`, as in the SQLite
-- store's 0010. The index held every waiting job with an event, released or not, and the
-- release query filtered the released ones out row by row; an event of many jobs is
-- released in rounds, so each round stepped over every job released before it. The
-- query already says `NOT event_released`, which implies this WHERE. Never edit this
-- file once released.

DROP INDEX jobs_event_waiters;
CREATE INDEX jobs_event_waiters ON jobs (wait_for_event, seq)
    WHERE (state = 'QUEUED' OR state = 'SCHEDULED') AND wait_for_event IS NOT NULL AND NOT event_released;
