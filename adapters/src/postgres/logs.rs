//! What daemons sharing one Postgres database tell each other besides the jobs: the logs
//! of the jobs each one runs ([`PgLogs`], table `job_log_chunks` of migration
//! `0003_job_logs.sql`). Wake-ups are [`PgListener`](super::PgListener)'s.
//!
//! **Promises.** A log reads back as the concatenation of the chunks appended to it, with
//! the chunking rules of [`crate::logs`] (a character never split, invalid bytes as
//! U+FFFD).
//!
//! **Never.** Nothing here decides anything about a job: the copier (the daemon) says what
//! to append.

use postgres::error::SqlState;
use postgres::Client;
use semantica_core::JobId;

use super::{describe, valid_schema_name, PgOptions};
use crate::logs::{chunk_of_window, window_bytes, Chunk};

/// The most bytes one appended chunk holds: a job that printed more since the last copy
/// is copied as several rows.
pub const LOG_CHUNK_BYTES_MAX: usize = 256 * 1024;

/// One connection to the database for `options`' schema (set on the search path, not
/// created: the store's `open` creates and migrates it).
fn connect(url: &str, options: &PgOptions) -> Result<Client, String> {
    let mut client = super::connect(url).map_err(|e| describe(&e))?;
    if let Some(name) = &options.schema {
        if !valid_schema_name(name) {
            return Err(format!("schema {name:?} is not a name PgStore makes"));
        }
        client.batch_execute(&format!("SET search_path TO \"{name}\"")).map_err(|e| describe(&e))?;
    }
    Ok(client)
}

/// A piece of a job's log to append at `start_offset` (the log's end as the copier knows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogAppend {
    pub job_id: JobId,
    pub start_offset: u64,
    pub bytes: Vec<u8>,
}

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// The job is no longer in the database (purged): its log has nowhere to go.
    JobGone,
    /// The piece overlaps what is stored (another copier appended first).
    Overlap,
    /// The database could not be reached or refused; try again later.
    Unavailable(String),
}

/// Job logs in the database: one connection, for the copier or for readers.
pub struct PgLogs {
    client: Client,
}

impl PgLogs {
    pub fn open(url: &str, options: &PgOptions) -> Result<PgLogs, String> {
        Ok(PgLogs { client: connect(url, options)? })
    }

    /// This connection's commits no longer wait for the server to flush them to disk
    /// (`synchronous_commit = off`): they are visible to every reader at once, and a
    /// server crash may lose the last moments of them. For the copier, whose appends sit
    /// on the path of a job's end: the log file it copies from stays on the daemon's disk.
    pub fn without_waiting_for_flush(mut self) -> Result<PgLogs, String> {
        self.client.batch_execute("SET synchronous_commit = off").map_err(|e| describe(&e))?;
        Ok(self)
    }

    /// Whether the connection is gone (the caller opens a new one).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Where the job's log ends in the database: 0 when nothing is stored.
    pub fn end(&mut self, job_id: JobId) -> Result<u64, String> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(max(start_offset + length(bytes)), 0)::bigint FROM job_log_chunks WHERE job_id = $1",
                &[&job_id.to_string()],
            )
            .map_err(|e| describe(&e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Appends the pieces, all in one statement (one round trip for every job the copier
    /// looked at). A refusal names no piece: the caller appends them one at a time then,
    /// to find out which job's piece it was.
    pub fn append_all(&mut self, pieces: &[LogAppend]) -> Result<(), AppendError> {
        if pieces.is_empty() {
            return Ok(());
        }
        assert!(pieces.iter().all(|p| !p.bytes.is_empty() && p.bytes.len() <= LOG_CHUNK_BYTES_MAX));
        let ids: Vec<String> = pieces.iter().map(|p| p.job_id.to_string()).collect();
        let offsets: Vec<i64> = pieces.iter().map(|p| i64::try_from(p.start_offset).unwrap_or(i64::MAX)).collect();
        let bytes: Vec<&[u8]> = pieces.iter().map(|p| p.bytes.as_slice()).collect();
        // A purged job's piece is left out rather than refused by the foreign key; the
        // caller learns of it from `end` or a one-piece append.
        let inserted = self
            .client
            .execute(
                "INSERT INTO job_log_chunks (job_id, start_offset, bytes)
                 SELECT piece.job_id, piece.start_offset, piece.bytes
                 FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS piece (job_id, start_offset, bytes)
                 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = piece.job_id)",
                &[&ids, &offsets, &bytes],
            )
            .map_err(|error| match error.code() {
                Some(code) if *code == SqlState::UNIQUE_VIOLATION => AppendError::Overlap,
                Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => AppendError::JobGone,
                _ => AppendError::Unavailable(describe(&error)),
            })?;
        if inserted as usize == pieces.len() {
            Ok(())
        } else {
            Err(AppendError::JobGone)
        }
    }

    /// Records that these attempts' logs are whole in the database (each at the end the
    /// database holds now), in one statement; a job gone meanwhile is no error: its log
    /// went with it.
    pub fn seal_all(&mut self, attempts: &[(JobId, u32)]) -> Result<(), String> {
        if attempts.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = attempts.iter().map(|(id, _)| id.to_string()).collect();
        let numbers: Vec<i64> = attempts.iter().map(|(_, attempt)| i64::from(*attempt)).collect();
        self.client
            .execute(
                "INSERT INTO job_log_ends (job_id, attempt, end_offset)
                 SELECT ended.job_id, ended.attempt,
                        coalesce((SELECT max(start_offset + length(bytes)) FROM job_log_chunks
                                  WHERE job_log_chunks.job_id = ended.job_id), 0)
                 FROM unnest($1::text[], $2::bigint[]) AS ended (job_id, attempt)
                 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = ended.job_id)
                 ON CONFLICT (job_id, attempt) DO UPDATE SET end_offset = excluded.end_offset",
                &[&ids, &numbers],
            )
            .map_err(|e| describe(&e))?;
        Ok(())
    }

    /// Whether `attempt`'s log was recorded whole ([`PgLogs::seal`]).
    pub fn sealed(&mut self, job_id: JobId, attempt: u32) -> Result<bool, String> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM job_log_ends WHERE job_id = $1 AND attempt = $2)",
                &[&job_id.to_string(), &i64::from(attempt)],
            )
            .map_err(|e| describe(&e))?;
        Ok(row.get(0))
    }

    /// The chunk of the job's log at `offset`, up to `limit_bytes`, as
    /// [`crate::logs::read_chunk`] reads a file. `at_end` says the database holds nothing
    /// past it (yet).
    pub fn read(&mut self, job_id: JobId, offset: u64, limit_bytes: u64) -> Result<Chunk, String> {
        let size = self.end(job_id)?;
        let window_len = window_bytes(offset, limit_bytes, size);
        if window_len == 0 {
            return Ok(chunk_of_window(&[], offset, limit_bytes, size));
        }
        let first = i64::try_from(offset).map_err(|_| format!("offset {offset} is out of range"))?;
        let last = first.saturating_add(window_len as i64);
        let rows = self
            .client
            .query(
                "SELECT start_offset, bytes FROM job_log_chunks
                 WHERE job_id = $1 AND start_offset < $3 AND start_offset + length(bytes) > $2
                 ORDER BY start_offset",
                &[&job_id.to_string(), &first, &last],
            )
            .map_err(|e| describe(&e))?;
        let mut window: Vec<u8> = Vec::with_capacity(window_len as usize);
        for row in &rows {
            let start = row.get::<_, i64>(0) as u64;
            let bytes: &[u8] = row.get(1);
            let at = offset + window.len() as u64;
            // Chunks are contiguous by construction (each starts at the end before it);
            // a gap would mean rows were lost, and the window ends there.
            if start > at {
                break;
            }
            let skip = (at - start) as usize;
            if skip < bytes.len() {
                let take = (bytes.len() - skip).min(window_len as usize - window.len());
                window.extend_from_slice(&bytes[skip..skip + take]);
            }
            if window.len() as u64 >= window_len {
                break;
            }
        }
        Ok(chunk_of_window(&window, offset, limit_bytes, size))
    }
}
