-- 0007: the hot row. A job's row is split in two: `jobs` keeps what an engine step may
-- change (state, attempts, times, pid, wake time, version, outcome) and what the indexes
-- and queries name; `job_specs` keeps what is written once at enqueue and only read
-- afterwards (payload, exec spec, retry and timeout policies, trace id). A state change
-- then rewrites a row of a few dozen bytes instead of one that carries the payload
-- (a 1 MiB payload was rewritten, overflow pages and all, at every transition). The
-- outcome (exit code, error, result summary, artifacts) stays in the hot row: it is
-- written once, at the end, when the row stops changing, and a table of its own would
-- cost one more statement per finished job.
--
-- The state CHECK is also written as an OR of equalities: SQLite checks `state IN (nine
-- names)` by building a temporary table of the list for every row written (one
-- temporary b-tree created and dropped per INSERT and UPDATE of a job, found with
-- callgrind). A table's columns and CHECKs cannot be changed in place, so both tables
-- are made new and filled from the old one (SQLite's documented way), and the indexes
-- are made again as they were. Every job keeps its seq, which joins the two halves.
-- Never edit this file once released.

CREATE TABLE job_specs (
    seq                   INTEGER PRIMARY KEY CHECK (seq >= 1),
    payload_json          TEXT    NOT NULL,
    -- exec: NULL command = the in-process handler of job_type. args is a JSON array of
    -- strings, env a JSON object of strings.
    exec_command          TEXT,
    exec_args_json        TEXT,
    exec_env_json         TEXT,
    exec_cwd              TEXT,
    max_attempts          INTEGER NOT NULL CHECK (max_attempts >= 0),
    backoff_base_ms       INTEGER NOT NULL CHECK (backoff_base_ms >= 0),
    -- No column affinity, so SQLite keeps the double bit for bit (a REAL column would
    -- store an integral value as an integer and lose the sign of -0.0).
    backoff_factor        ANY     NOT NULL CHECK (typeof(backoff_factor) = 'real'),
    backoff_max_ms        INTEGER NOT NULL CHECK (backoff_max_ms >= 0),
    backoff_jitter        ANY     NOT NULL CHECK (typeof(backoff_jitter) = 'real'),
    timeout_ms            INTEGER CHECK (timeout_ms >= 0),
    ttl_ms                INTEGER CHECK (ttl_ms >= 0),
    trace_id              TEXT    NOT NULL,
    retry_of              TEXT,
    CHECK (exec_command IS NOT NULL OR (exec_args_json IS NULL AND exec_env_json IS NULL AND exec_cwd IS NULL))
) STRICT;

INSERT INTO job_specs (seq, payload_json, exec_command, exec_args_json, exec_env_json, exec_cwd,
    max_attempts, backoff_base_ms, backoff_factor, backoff_max_ms, backoff_jitter, timeout_ms,
    ttl_ms, trace_id, retry_of) SELECT seq, payload_json, exec_command, exec_args_json,
    exec_env_json, exec_cwd, max_attempts, backoff_base_ms, backoff_factor, backoff_max_ms,
    backoff_jitter, timeout_ms, ttl_ms, trace_id, retry_of FROM jobs;

CREATE TABLE jobs_0007 (
    -- Enqueue sequence, also the rowid: query and purge walk the table in this order.
    seq                   INTEGER PRIMARY KEY CHECK (seq >= 1),
    -- Canonical hyphenated UUID text, as JobId displays it.
    id                    TEXT    NOT NULL UNIQUE CHECK (length(id) = 36),
    version               INTEGER NOT NULL CHECK (version >= 1),
    queue                 TEXT    NOT NULL,
    job_type              TEXT    NOT NULL,
    subject_key           TEXT    NOT NULL,
    generation            INTEGER NOT NULL CHECK (generation >= 0),
    state                 TEXT    NOT NULL CHECK (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING'
                                        OR state = 'DONE' OR state = 'FAILED' OR state = 'CANCELLED'
                                        OR state = 'SUPERSEDED' OR state = 'SKIPPED_TTL'
                                        OR state = 'SKIPPED_DEADLINE'),
    priority              INTEGER NOT NULL,
    attempts              INTEGER NOT NULL CHECK (attempts >= 0),
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
    deadline_wall_ms      INTEGER CHECK (deadline_wall_ms IS NULL OR deadline_wall_ms >= 0),
    at_wall_ms            INTEGER CHECK (at_wall_ms IS NULL OR at_wall_ms >= 0),
    wall_offset_ms        INTEGER,
    CHECK ((error_kind IS NULL) = (error_message IS NULL))
) STRICT;

INSERT INTO jobs_0007 (seq, id, version, queue, job_type, subject_key, generation, state,
    priority, attempts, deadline_ms, wait_for_idle, require_charging, wait_for_event,
    event_released, parent_job_id, parent_pending, tag, chain_group_id, created_at_ms,
    due_at_ms, started_at_ms, finished_at_ms, wake_at_ms, pid, pid_started_at, reap_pending,
    exit_code, error_kind, error_message, result_summary_json, artifacts_json, deadline_wall_ms,
    at_wall_ms, wall_offset_ms) SELECT seq, id, version, queue, job_type, subject_key,
    generation, state, priority, attempts, deadline_ms, wait_for_idle, require_charging,
    wait_for_event, event_released, parent_job_id, parent_pending, tag, chain_group_id,
    created_at_ms, due_at_ms, started_at_ms, finished_at_ms, wake_at_ms, pid, pid_started_at,
    reap_pending, exit_code, error_kind, error_message, result_summary_json, artifacts_json,
    deadline_wall_ms, at_wall_ms, wall_offset_ms FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_0007 RENAME TO jobs;

CREATE INDEX jobs_queued ON jobs (queue, priority DESC, seq) WHERE state = 'QUEUED';

CREATE INDEX jobs_processes ON jobs (queue) WHERE state = 'RUNNING' OR reap_pending = 1;

CREATE INDEX jobs_wake ON jobs (wake_at_ms, seq) WHERE wake_at_ms IS NOT NULL;

CREATE INDEX jobs_event_waiters ON jobs (wait_for_event, seq)
    WHERE state IN ('QUEUED', 'SCHEDULED') AND wait_for_event IS NOT NULL;

CREATE INDEX jobs_system_waiters ON jobs (seq)
    WHERE state IN ('QUEUED', 'SCHEDULED') AND (wait_for_idle = 1 OR require_charging = 1);

CREATE INDEX jobs_queued_due ON jobs (queue, due_at_ms) WHERE state = 'QUEUED';

CREATE INDEX jobs_wall_timed ON jobs (seq) WHERE wall_offset_ms IS NOT NULL;

CREATE INDEX jobs_active_subject ON jobs (subject_key, seq)
    WHERE (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING') OR reap_pending = 1;

CREATE INDEX jobs_finished ON jobs (seq, finished_at_ms)
    WHERE (state = 'DONE' OR state = 'FAILED' OR state = 'CANCELLED' OR state = 'SUPERSEDED'
           OR state = 'SKIPPED_TTL' OR state = 'SKIPPED_DEADLINE') AND reap_pending = 0;

CREATE INDEX jobs_live_tag ON jobs (tag, seq)
    WHERE tag IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');

CREATE INDEX jobs_live_group ON jobs (chain_group_id, seq)
    WHERE chain_group_id IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');

CREATE INDEX jobs_live_parent ON jobs (parent_job_id, seq)
    WHERE parent_job_id IS NOT NULL AND (state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING');
