-- 0001: the job table, the per-subject generation high-water marks and the store's
-- counters. Applied by semantica-adapters' SQLite store inside one transaction; the
-- store records it in schema_version. Never edit this file once released: changes go
-- in a new numbered file.
--
-- Integers: every u64 of a job is stored as a signed 64-bit integer. Ordered ones (seq,
-- generation, times) stay below 2^63 by core's limits; pid_started_at, which the OS
-- hands over and which is never compared, is stored bit for bit.

CREATE TABLE jobs (
    -- Enqueue sequence, also the rowid: query and purge walk the table in this order.
    seq                   INTEGER PRIMARY KEY CHECK (seq >= 1),
    -- Canonical hyphenated UUID text, as JobId displays it.
    id                    TEXT    NOT NULL UNIQUE CHECK (length(id) = 36),
    version               INTEGER NOT NULL CHECK (version >= 1),
    queue                 TEXT    NOT NULL,
    job_type              TEXT    NOT NULL,
    subject_key           TEXT    NOT NULL,
    generation            INTEGER NOT NULL CHECK (generation >= 0),
    state                 TEXT    NOT NULL CHECK (state IN ('QUEUED', 'SCHEDULED', 'RUNNING', 'DONE', 'FAILED',
                                                            'CANCELLED', 'SUPERSEDED', 'SKIPPED_TTL',
                                                            'SKIPPED_DEADLINE')),
    priority              INTEGER NOT NULL,
    payload_json          TEXT    NOT NULL,
    -- exec: NULL command = the in-process handler of job_type. args is a JSON array of
    -- strings, env a JSON object of strings.
    exec_command          TEXT,
    exec_args_json        TEXT,
    exec_env_json         TEXT,
    exec_cwd              TEXT,
    attempts              INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts          INTEGER NOT NULL CHECK (max_attempts >= 0),
    backoff_base_ms       INTEGER NOT NULL CHECK (backoff_base_ms >= 0),
    -- No column affinity, so SQLite keeps the double bit for bit (a REAL column would
    -- store an integral value as an integer and lose the sign of -0.0).
    backoff_factor        ANY     NOT NULL CHECK (typeof(backoff_factor) = 'real'),
    backoff_max_ms        INTEGER NOT NULL CHECK (backoff_max_ms >= 0),
    backoff_jitter        ANY     NOT NULL CHECK (typeof(backoff_jitter) = 'real'),
    timeout_ms            INTEGER CHECK (timeout_ms >= 0),
    ttl_ms                INTEGER CHECK (ttl_ms >= 0),
    deadline_ms           INTEGER CHECK (deadline_ms >= 0),
    wait_for_idle         INTEGER NOT NULL CHECK (wait_for_idle IN (0, 1)),
    require_charging      INTEGER NOT NULL CHECK (require_charging IN (0, 1)),
    wait_for_event        TEXT,
    event_released        INTEGER NOT NULL CHECK (event_released IN (0, 1)),
    -- No foreign key: a DONE parent may be purged while its children still wait or run.
    parent_job_id         TEXT    CHECK (length(parent_job_id) = 36),
    parent_pending        INTEGER NOT NULL CHECK (parent_pending IN (0, 1)),
    tag                   TEXT,
    chain_group_id        TEXT,
    trace_id              TEXT    NOT NULL,
    created_at_ms         INTEGER NOT NULL CHECK (created_at_ms >= 0),
    due_at_ms             INTEGER NOT NULL CHECK (due_at_ms >= 0),
    started_at_ms         INTEGER CHECK (started_at_ms >= 0),
    finished_at_ms        INTEGER CHECK (finished_at_ms >= 0),
    wake_at_ms            INTEGER CHECK (wake_at_ms >= 0),
    pid                   INTEGER CHECK (pid >= 0),
    pid_started_at        INTEGER,
    reap_pending          INTEGER NOT NULL CHECK (reap_pending IN (0, 1)),
    exit_code             INTEGER,
    error_kind            TEXT,
    error_message         TEXT,
    result_summary_json   TEXT,
    -- JSON array of [name, bytes] pairs.
    artifacts_json        TEXT    NOT NULL,
    CHECK (exec_command IS NOT NULL OR (exec_args_json IS NULL AND exec_env_json IS NULL AND exec_cwd IS NULL)),
    CHECK ((error_kind IS NULL) = (error_message IS NULL))
) STRICT;

-- The indexes below are partial: each holds only the few rows one engine question can
-- match (live, waiting, running), so they stay small while finished jobs pile up. Every
-- query repeats its index's WHERE clause word for word so that the planner can use it.

-- claim_candidates (pop order) and ready_queues.
CREATE INDEX jobs_queued ON jobs (queue, priority DESC, seq) WHERE state = 'QUEUED';

-- Subject exclusivity in claim_candidates, process_holders; worker slots in process_count.
CREATE INDEX jobs_occupying ON jobs (subject_key, seq) WHERE state = 'RUNNING' OR reap_pending = 1;
CREATE INDEX jobs_processes ON jobs (queue) WHERE state = 'RUNNING' OR reap_pending = 1;

-- active_jobs_of_subject ("active" = non-terminal or reap_pending).
CREATE INDEX jobs_active_subject ON jobs (subject_key, seq)
    WHERE state IN ('QUEUED', 'SCHEDULED', 'RUNNING') OR reap_pending = 1;

-- due_jobs.
CREATE INDEX jobs_wake ON jobs (wake_at_ms, seq) WHERE wake_at_ms IS NOT NULL;

-- Cancel by tag or chain group, children of a parent (non-terminal jobs).
CREATE INDEX jobs_live_tag ON jobs (tag, seq) WHERE state IN ('QUEUED', 'SCHEDULED', 'RUNNING');
CREATE INDEX jobs_live_group ON jobs (chain_group_id, seq) WHERE state IN ('QUEUED', 'SCHEDULED', 'RUNNING');
CREATE INDEX jobs_live_parent ON jobs (parent_job_id, seq) WHERE state IN ('QUEUED', 'SCHEDULED', 'RUNNING');

-- event_waiters and system_waiters.
CREATE INDEX jobs_event_waiters ON jobs (wait_for_event, seq)
    WHERE state IN ('QUEUED', 'SCHEDULED') AND wait_for_event IS NOT NULL;
CREATE INDEX jobs_system_waiters ON jobs (seq)
    WHERE state IN ('QUEUED', 'SCHEDULED') AND (wait_for_idle = 1 OR require_charging = 1);

-- purgeable: walked in seq order, covering finished_at_ms so rows that are not old
-- enough are skipped without reading the table.
CREATE INDEX jobs_finished ON jobs (seq, finished_at_ms)
    WHERE state IN ('DONE', 'FAILED', 'CANCELLED', 'SUPERSEDED', 'SKIPPED_TTL', 'SKIPPED_DEADLINE')
      AND reap_pending = 0;

-- The highest generation ever inserted per subject; survives the purge of its jobs.
CREATE TABLE subjects (
    subject_key     TEXT    PRIMARY KEY NOT NULL,
    max_generation  INTEGER NOT NULL CHECK (max_generation >= 0)
) STRICT, WITHOUT ROWID;

-- One row: the highest seq ever inserted (0 for an empty store); survives purges.
CREATE TABLE counters (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    max_seq    INTEGER NOT NULL CHECK (max_seq >= 0)
) STRICT;

INSERT INTO counters (singleton, max_seq) VALUES (1, 0);
