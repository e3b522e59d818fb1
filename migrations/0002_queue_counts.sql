-- 0002: per-queue, per-state counts kept as jobs are written, so that admin.stats.v1 and
-- a metrics scrape read a few rows instead of scanning every job. The store adds each
-- write set's changes to them in the same transaction (one statement per queue and state
-- the set touched; triggers, one per row, cost the writer three quarters of its batch
-- speed). Filled here from the jobs already there. Never edit this file once released.

CREATE TABLE queue_counts (
    queue        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    -- Jobs of the queue in the state.
    jobs         INTEGER NOT NULL,
    -- Over those jobs that have started: the sum of max(started_at_ms - due_at_ms, 0)
    -- and how many they are (avg_wait_ms = wait_sum_ms / started).
    wait_sum_ms  INTEGER NOT NULL,
    started      INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) STRICT, WITHOUT ROWID;

INSERT INTO queue_counts (queue, state, jobs, wait_sum_ms, started)
    SELECT queue, state, count(*),
           sum(CASE WHEN started_at_ms > due_at_ms THEN started_at_ms - due_at_ms ELSE 0 END),
           count(started_at_ms)
    FROM jobs GROUP BY queue, state;
