-- 0004: per-queue, per-state counts kept as jobs are written, so that admin.stats.v1 and
-- a metrics scrape read a few rows instead of grouping every job (that scan was the
-- busiest statement of a drain, sampled from pg_stat_activity). Every write set adds its
-- changes here in its own transaction.
--
-- One row per queue and state would make every daemon's write sets take turns on the
-- same few rows. The counts are therefore striped: a writer adds to the rows of its
-- stripe (its server process id modulo 16), and a read sums the stripes. A stripe's row
-- may go negative (a job counted in by one stripe and out by another); only the sums
-- mean anything. Filled here, in stripe 0, from the jobs already there. Never edit this
-- file once released.

CREATE TABLE queue_counts (
    stripe       SMALLINT NOT NULL CHECK (stripe >= 0 AND stripe < 16),
    queue        TEXT     COLLATE "C" NOT NULL,
    state        TEXT     COLLATE "C" NOT NULL,
    -- Jobs of the queue in the state.
    jobs         BIGINT   NOT NULL,
    -- Over those jobs that have started: the sum of max(started_at_ms - due_at_ms, 0)
    -- and how many they are (avg_wait_ms = wait_sum_ms / started).
    wait_sum_ms  BIGINT   NOT NULL,
    started      BIGINT   NOT NULL,
    PRIMARY KEY (queue, state, stripe)
);

INSERT INTO queue_counts (stripe, queue, state, jobs, wait_sum_ms, started)
    SELECT 0, queue, state, count(*), coalesce(sum(greatest(started_at_ms - due_at_ms, 0)), 0),
           count(started_at_ms)
    FROM jobs GROUP BY queue, state;
