-- 0001 (Postgres): the whole schema of the Postgres store, the same jobs as SQLite's
-- migrations 0001..0006 make, plus the rules the database itself keeps so that several
-- engines may share it. Applied by semantica-adapters' PgStore inside one transaction,
-- under a session advisory lock, and recorded in schema_version. Never edit this file
-- once released: changes go in a new numbered file.
--
-- Integers: every u64 of a job is a BIGINT. Ordered ones (seq, generation, times) stay
-- below 2^63 by core's limits; pid_started_at, which the OS hands over and which is
-- never compared, is stored bit for bit. Text that is compared or sorted (queue,
-- subject, names) is COLLATE "C", so that order is byte order, as core's BTreeMaps sort,
-- whatever the database's default collation. Text that a client or a process may fill
-- with any bytes, NUL included (payload, result, error message), is BYTEA holding UTF-8:
-- Postgres TEXT refuses NUL.

CREATE TABLE jobs (
    seq                   BIGINT  PRIMARY KEY CHECK (seq >= 1),
    -- Canonical hyphenated UUID text, as JobId displays it.
    id                    TEXT    COLLATE "C" NOT NULL UNIQUE CHECK (length(id) = 36),
    version               BIGINT  NOT NULL CHECK (version >= 1),
    queue                 TEXT    COLLATE "C" NOT NULL,
    job_type              TEXT    COLLATE "C" NOT NULL,
    subject_key           TEXT    COLLATE "C" NOT NULL,
    generation            BIGINT  NOT NULL CHECK (generation >= 0),
    state                 TEXT    COLLATE "C" NOT NULL CHECK (state IN ('QUEUED', 'SCHEDULED', 'RUNNING', 'DONE',
                                      'FAILED', 'CANCELLED', 'SUPERSEDED', 'SKIPPED_TTL', 'SKIPPED_DEADLINE')),
    priority              INTEGER NOT NULL,
    payload_json          BYTEA   NOT NULL,
    -- exec: NULL command = the in-process handler of job_type. args is a JSON array of
    -- strings, env a JSON object of strings.
    exec_command          TEXT,
    exec_args_json        TEXT,
    exec_env_json         TEXT,
    exec_cwd              TEXT,
    attempts              BIGINT  NOT NULL CHECK (attempts >= 0),
    max_attempts          BIGINT  NOT NULL CHECK (max_attempts >= 0),
    backoff_base_ms       BIGINT  NOT NULL CHECK (backoff_base_ms >= 0),
    -- float8 keeps a double bit for bit, -0.0 included.
    backoff_factor        DOUBLE PRECISION NOT NULL,
    backoff_max_ms        BIGINT  NOT NULL CHECK (backoff_max_ms >= 0),
    backoff_jitter        DOUBLE PRECISION NOT NULL,
    timeout_ms            BIGINT  CHECK (timeout_ms >= 0),
    ttl_ms                BIGINT  CHECK (ttl_ms >= 0),
    deadline_ms           BIGINT  CHECK (deadline_ms >= 0),
    wait_for_idle         BOOLEAN NOT NULL,
    require_charging      BOOLEAN NOT NULL,
    wait_for_event        TEXT    COLLATE "C",
    event_released        BOOLEAN NOT NULL,
    -- No foreign key: a DONE parent may be purged while its children still wait or run.
    parent_job_id         TEXT    COLLATE "C" CHECK (length(parent_job_id) = 36),
    parent_pending        BOOLEAN NOT NULL,
    tag                   TEXT    COLLATE "C",
    chain_group_id        TEXT    COLLATE "C",
    trace_id              TEXT    NOT NULL,
    created_at_ms         BIGINT  NOT NULL CHECK (created_at_ms >= 0),
    due_at_ms             BIGINT  NOT NULL CHECK (due_at_ms >= 0),
    started_at_ms         BIGINT  CHECK (started_at_ms >= 0),
    finished_at_ms        BIGINT  CHECK (finished_at_ms >= 0),
    wake_at_ms            BIGINT  CHECK (wake_at_ms >= 0),
    pid                   BIGINT  CHECK (pid >= 0),
    pid_started_at        BIGINT,
    reap_pending          BOOLEAN NOT NULL,
    exit_code             INTEGER,
    error_kind            TEXT,
    error_message         BYTEA,
    result_summary_json   BYTEA,
    -- JSON array of [name, bytes] pairs.
    artifacts_json        TEXT    NOT NULL,
    retry_of              TEXT    COLLATE "C" CHECK (length(retry_of) = 36),
    deadline_wall_ms      BIGINT  CHECK (deadline_wall_ms >= 0),
    at_wall_ms            BIGINT  CHECK (at_wall_ms >= 0),
    wall_offset_ms        BIGINT,
    CHECK (exec_command IS NOT NULL OR (exec_args_json IS NULL AND exec_env_json IS NULL AND exec_cwd IS NULL)),
    CHECK ((error_kind IS NULL) = (error_message IS NULL)),

    -- Subject exclusivity, kept by the database across every engine that shares it: at
    -- most one job per subject may hold a process (RUNNING, or a stopped job whose
    -- process is still being reaped). Two daemons that each read the subject as free and
    -- each start a job of it cannot both commit. Deferred to the end of the transaction:
    -- one write set may release a subject and take it again in either order.
    CONSTRAINT jobs_one_occupying_per_subject
        EXCLUDE USING btree (subject_key WITH =) WHERE (state = 'RUNNING' OR reap_pending)
        DEFERRABLE INITIALLY DEFERRED,
    -- Guarantee 4 (dedup): at most one non-terminal job per (subject, generation). Two
    -- daemons enqueueing the same generation at once: one commits, the other's set is
    -- refused as a conflict and its engine, run again, finds the first job.
    CONSTRAINT jobs_one_live_per_generation
        EXCLUDE USING btree (subject_key WITH =, generation WITH =)
        WHERE (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING')
        DEFERRABLE INITIALLY DEFERRED
);

-- Partial indexes: each holds only the rows one engine question can match, so they stay
-- small while finished jobs pile up; the store's queries repeat their WHERE clauses.

-- claim_candidates (pop order), ready_queues, oldest queued due time.
CREATE INDEX jobs_queued ON jobs (queue, priority DESC, seq) WHERE state = 'QUEUED';
CREATE INDEX jobs_queued_due ON jobs (queue, due_at_ms) WHERE state = 'QUEUED';

-- Worker slots in process_count, process_holders. (The exclusion constraint above is the
-- index of occupying jobs by subject.)
CREATE INDEX jobs_processes ON jobs (queue, seq) WHERE state = 'RUNNING' OR reap_pending;

-- active_jobs_of_subject ("active" = non-terminal or reap_pending).
CREATE INDEX jobs_active_subject ON jobs (subject_key, seq)
    WHERE state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING' OR reap_pending;

-- due_jobs.
CREATE INDEX jobs_wake ON jobs (wake_at_ms, seq) WHERE wake_at_ms IS NOT NULL;

-- Cancel by tag or chain group, children of a parent (non-terminal jobs).
CREATE INDEX jobs_live_tag ON jobs (tag, seq)
    WHERE tag IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');
CREATE INDEX jobs_live_group ON jobs (chain_group_id, seq)
    WHERE chain_group_id IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');
CREATE INDEX jobs_live_parent ON jobs (parent_job_id, seq)
    WHERE parent_job_id IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');

-- event_waiters and system_waiters.
CREATE INDEX jobs_event_waiters ON jobs (wait_for_event, seq)
    WHERE (state = 'QUEUED' OR state = 'SCHEDULED') AND wait_for_event IS NOT NULL;
CREATE INDEX jobs_system_waiters ON jobs (seq)
    WHERE (state = 'QUEUED' OR state = 'SCHEDULED') AND (wait_for_idle OR require_charging);

-- purgeable.
CREATE INDEX jobs_finished ON jobs (seq, finished_at_ms)
    WHERE state NOT IN ('QUEUED', 'SCHEDULED', 'RUNNING') AND NOT reap_pending;

-- wall_timed_jobs.
CREATE INDEX jobs_wall_timed ON jobs (seq) WHERE wall_offset_ms IS NOT NULL;

-- query: newest first / filters by queue.
CREATE INDEX jobs_queue_seq ON jobs (queue, seq);

-- The highest generation ever inserted per subject; survives the purge of its jobs.
CREATE TABLE subjects (
    subject_key     TEXT    COLLATE "C" PRIMARY KEY,
    max_generation  BIGINT  NOT NULL CHECK (max_generation >= 0)
);

-- One row: the highest seq ever inserted (0 for an empty store); survives purges. A
-- commit that inserts locks it (SELECT ... FOR UPDATE) before judging its sequence
-- numbers, so two engines inserting at once are ordered here.
CREATE TABLE counters (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    max_seq    BIGINT  NOT NULL CHECK (max_seq >= 0)
);
INSERT INTO counters (singleton, max_seq) VALUES (1, 0);

-- A queue listed here starts nothing; the engine reads it at start.
CREATE TABLE paused_queues (
    queue TEXT COLLATE "C" PRIMARY KEY
);

-- What dev.recurring.set.v1 stored; job_json is the job to enqueue at each slot,
-- next_at_ms the earliest slot that has not fired (NULL: none left).
CREATE TABLE recurring (
    name                  TEXT   COLLATE "C" PRIMARY KEY,
    cron                  TEXT   NOT NULL,
    timezone              TEXT   NOT NULL,
    job_json              TEXT   NOT NULL,
    next_at_ms            BIGINT CHECK (next_at_ms IS NULL OR next_at_ms >= 0),
    last_slot_ms          BIGINT,
    last_enqueued_job_id  TEXT
);
CREATE INDEX recurring_next ON recurring (next_at_ms, name) WHERE next_at_ms IS NOT NULL;
