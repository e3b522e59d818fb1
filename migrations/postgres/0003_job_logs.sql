-- 0003 (Postgres): job logs in the database, so that every daemon sharing it answers
-- logs.tail.v1 and logs.follow.v1 for every job, whichever daemon ran it (API.md,
-- "Several daemons on one Postgres"). The daemon that runs a job writes its log to a file
-- under its own SEMANTICA_HOME, as on SQLite, and copies what the file gained into this
-- table every ~150 ms and whole once the attempt ended. (0002 is node leases.)
--
-- A log is the concatenation of its chunks in start_offset order: each chunk starts where
-- the previous one ended (the copier appends at the log's end as the database has it).
-- The copier caps a job's rows at log_max_bytes (plus the note that says so), as the file
-- is capped. A purged job's chunks go with it (ON DELETE CASCADE).

CREATE TABLE job_log_chunks (
    job_id        TEXT   COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    start_offset  BIGINT NOT NULL CHECK (start_offset >= 0),
    bytes         BYTEA  NOT NULL CHECK (length(bytes) > 0),
    PRIMARY KEY (job_id, start_offset)
);

-- An attempt's log is whole in job_log_chunks once its row is here: the copier writes it
-- after the attempt's last bytes, off the path of the attempt's end. A reader gives `eof`
-- for a terminal job only once the row of its last attempt is here (or the attempt's
-- daemon cannot write it any more: see daemon/src/pg_shared.rs).
CREATE TABLE job_log_ends (
    job_id      TEXT   COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL CHECK (attempt >= 0),
    end_offset  BIGINT NOT NULL CHECK (end_offset >= 0),
    PRIMARY KEY (job_id, attempt)
);
