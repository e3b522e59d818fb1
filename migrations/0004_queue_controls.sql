-- 0004: queue controls and recurring jobs.
-- * retry_of: the ended job that dev.retry.v1 enqueued a job again for.
-- * jobs_queued_due: the earliest due time of a queue's QUEUED jobs (oldest_wait_ms in
--   admin.stats.v1) without reading every one of them.
-- * paused_queues: a queue listed here starts nothing; the engine reads it at start.
-- * recurring: what dev.recurring.set.v1 stored; `job_json` is the job to enqueue at each
--   slot, next_at_ms the earliest slot that has not fired (NULL: none left).
-- Never edit this file once released.

ALTER TABLE jobs ADD COLUMN retry_of TEXT;

CREATE INDEX jobs_queued_due ON jobs (queue, due_at_ms) WHERE state = 'QUEUED';

CREATE TABLE paused_queues (
    queue TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;

CREATE TABLE recurring (
    name TEXT PRIMARY KEY NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    job_json TEXT NOT NULL,
    next_at_ms INTEGER CHECK (next_at_ms IS NULL OR next_at_ms >= 0),
    last_slot_ms INTEGER,
    last_enqueued_job_id TEXT
) WITHOUT ROWID;

CREATE INDEX recurring_next ON recurring (next_at_ms, name) WHERE next_at_ms IS NOT NULL;
