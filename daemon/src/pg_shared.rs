//! What a daemon on a Postgres store shares with the other daemons of its database,
//! besides the jobs (API.md, "Several daemons on one Postgres"):
//!
//! - **Logs** ([`SharedLogs`]): the log of a job this daemon runs is written to a file
//!   under its `SEMANTICA_HOME` as on SQLite, and a copier thread appends what the file
//!   gained to the database (`job_log_chunks`) every [`COPY_INTERVAL`], on a connection of
//!   its own, off the writer's path. Once an attempt has ended ([`SharedLogs::ended`]) the
//!   copier copies the rest at once and seals the attempt (`job_log_ends`); the end is
//!   recorded without waiting for that. Reads (`logs.tail.v1`, `logs.follow.v1`) come from
//!   the database, so that every daemon gives the same bytes at the same offsets, and a
//!   terminal job's log reaches `eof` only once its last attempt is sealed, or
//!   [`SEAL_WAIT_MS`] after the job ended (the daemon that ran it may have died first).
//!
//! Wake-ups between daemons are the lease's listener's (`service/nodes.rs`).
//!
//! Nothing here decides anything about a job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use semantica_adapters::logs::{read_chunk, Chunk};
use semantica_adapters::postgres::{AppendError, LogAppend, PgLogs, LOG_CHUNK_BYTES_MAX};
use semantica_adapters::PgOptions;
use semantica_core::JobId;
use tracing::{debug, warn};

/// How often the copier looks at the logs of the jobs running here.
pub const COPY_INTERVAL: Duration = Duration::from_millis(150);
/// Pieces of [`LOG_CHUNK_BYTES_MAX`] one job gets per look (a job that prints faster is
/// caught up at the next looks, and whole at its end).
const PIECES_PER_LOOK_MAX: usize = 8;
/// Bytes past `log_max_bytes` the database keeps of a log: the file's note that output
/// was dropped.
const NOTE_BYTES_MAX: u64 = 1024;
/// How long after a job ended a reader waits for its last attempt's seal before it takes
/// the log in the database as whole (the daemon that ran it died before sealing it; the
/// time is this daemon's engine clock against the job's `finished_at`).
pub const SEAL_WAIT_MS: u64 = 5_000;
/// Commands taken from the queue per round at most (then the round's statements run).
const COMMANDS_PER_ROUND_MAX: usize = 4096;
/// Jobs whose logs are copied at once at most (one per running job; the rest wait).
const COPYING_MAX: usize = 65_536;

enum Command {
    /// A job started here: copy its file from `from_local` (its size before the attempt).
    Start { job_id: JobId, path: PathBuf, from_local: u64, cap_bytes: u64 },
    /// These attempts ended: copy the rest of their logs now, then seal them.
    Ended { attempts: Vec<(JobId, u32)> },
}

/// One job's copy: where the file and the database stand.
struct Copying {
    path: PathBuf,
    /// The next byte of the file to copy.
    local_offset: u64,
    /// Where the log ends in the database; `None` until asked (at the first copy).
    db_offset: Option<u64>,
    /// The database's copy stops growing here.
    cap_bytes: u64,
    /// The attempt that ended, to seal once the file is copied whole.
    ended_attempt: Option<u32>,
}

/// Job logs in the database: the copier's queue and a connection for reads.
pub struct SharedLogs {
    url: String,
    commands: Mutex<mpsc::Sender<Command>>,
    reader: Mutex<Option<PgLogs>>,
}

impl SharedLogs {
    /// Starts the copier thread. The URL names the database and schema (its search path).
    pub fn start(url: &str) -> std::io::Result<SharedLogs> {
        let (commands, receiver) = mpsc::channel();
        let copier_url = url.to_owned();
        std::thread::Builder::new()
            .name("semantica-log-copier".into())
            .spawn(move || Copier { url: copier_url, connection: None, jobs: BTreeMap::new() }.run(receiver))?;
        Ok(SharedLogs { url: url.to_owned(), commands: Mutex::new(commands), reader: Mutex::new(None) })
    }

    /// A job starts here, writing its log to `path` (capped at `log_max_bytes`). Call
    /// before the executor opens the file: its size now is what earlier attempts wrote.
    pub fn start_copying(&self, job_id: JobId, path: PathBuf, log_max_bytes: u64) {
        let from_local = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
        let command = Command::Start { job_id, path, from_local, cap_bytes: log_max_bytes + NOTE_BYTES_MAX };
        let _ = self.commands.lock().expect("copier queue lock").send(command);
    }

    /// These attempts ended (their processes are gone): their logs are copied whole and
    /// sealed soon, without the caller waiting for it.
    pub fn ended(&self, attempts: Vec<(JobId, u32)>) {
        if !attempts.is_empty() {
            let _ = self.commands.lock().expect("copier queue lock").send(Command::Ended { attempts });
        }
    }

    /// The chunk of a job's log at `offset`, from the database (from the local file at
    /// `path` while the database holds nothing of it: a job that ran before logs were
    /// copied, or the first moments of a run here), and whether attempt `attempts` (the
    /// job's last; 0: it never ran) is sealed, asked only at the end of what is stored.
    /// Blocking: call off the async threads.
    pub fn read(
        &self,
        job_id: JobId,
        attempts: u32,
        path: &Path,
        offset: u64,
        limit_bytes: u64,
    ) -> Result<(Chunk, bool), String> {
        let mut reader = self.reader.lock().expect("log reader lock");
        if reader.as_ref().is_none_or(PgLogs::is_closed) {
            *reader = Some(PgLogs::open(&self.url, &PgOptions::default())?);
        }
        let logs = reader.as_mut().expect("opened above");
        let chunk = logs.read(job_id, offset, limit_bytes)?;
        if !chunk.at_end {
            return Ok((chunk, false));
        }
        let sealed = attempts == 0 || logs.sealed(job_id, attempts)?;
        if !sealed && chunk.next_offset == offset && logs.end(job_id)? == 0 {
            let local = read_chunk(path, offset, limit_bytes).map_err(|e| e.to_string())?;
            return Ok((local, false));
        }
        Ok((chunk, sealed))
    }
}

/// The copier thread's state.
struct Copier {
    url: String,
    connection: Option<PgLogs>,
    jobs: BTreeMap<JobId, Copying>,
}

impl Copier {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut next_look = Instant::now() + COPY_INTERVAL;
        loop {
            let first = match commands.recv_timeout(next_look.saturating_duration_since(Instant::now())) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                // The service is gone: so is the daemon.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Whatever else is queued goes in the same round trips: many jobs that start
            // and end together cost one statement, not one each.
            let mut ended = Vec::new();
            for command in
                first.into_iter().chain(std::iter::from_fn(|| commands.try_recv().ok()).take(COMMANDS_PER_ROUND_MAX))
            {
                match command {
                    Command::Start { job_id, path, from_local, cap_bytes } => {
                        if self.jobs.len() < COPYING_MAX || self.jobs.contains_key(&job_id) {
                            let copying = Copying {
                                path,
                                local_offset: from_local,
                                db_offset: None,
                                cap_bytes,
                                ended_attempt: None,
                            };
                            self.jobs.insert(job_id, copying);
                        }
                    }
                    Command::Ended { attempts } => {
                        for (id, attempt) in attempts {
                            if let Some(job) = self.jobs.get_mut(&id) {
                                job.ended_attempt = Some(attempt);
                                ended.push(id);
                            }
                        }
                    }
                }
            }
            if !ended.is_empty() {
                self.copy(&ended, usize::MAX);
                self.seal_ended(&ended);
            }
            if Instant::now() >= next_look {
                let ids: Vec<JobId> = self.jobs.keys().copied().collect();
                self.copy(&ids, PIECES_PER_LOOK_MAX);
                self.seal_ended(&ids);
                next_look = Instant::now() + COPY_INTERVAL;
            }
        }
    }

    fn connection(&mut self) -> Option<&mut PgLogs> {
        if self.connection.as_ref().is_none_or(PgLogs::is_closed) {
            match PgLogs::open(&self.url, &PgOptions::default()).and_then(PgLogs::without_waiting_for_flush) {
                Ok(logs) => self.connection = Some(logs),
                Err(error) => {
                    warn!(%error, "cannot reach the database to copy job logs; trying again");
                    self.connection = None;
                }
            }
        }
        self.connection.as_mut()
    }

    /// Copies what the files of `ids` gained, at most `rounds` pieces per job, all jobs'
    /// pieces of a round in one statement.
    fn copy(&mut self, ids: &[JobId], rounds: usize) {
        for _ in 0..rounds {
            let pieces = self.next_pieces(ids);
            if pieces.is_empty() {
                return;
            }
            let Some(connection) = self.connection() else { return };
            match connection.append_all(&pieces) {
                Ok(()) => self.copied(&pieces),
                // One of them failed: each on its own, to find which.
                Err(_) => {
                    for piece in &pieces {
                        let Some(connection) = self.connection() else { return };
                        match connection.append_all(std::slice::from_ref(piece)) {
                            Ok(()) => self.copied(std::slice::from_ref(piece)),
                            Err(AppendError::JobGone) => {
                                self.jobs.remove(&piece.job_id);
                            }
                            // Someone else wrote there: start again from the database's end.
                            Err(AppendError::Overlap) => {
                                if let Some(job) = self.jobs.get_mut(&piece.job_id) {
                                    job.db_offset = None;
                                }
                            }
                            Err(AppendError::Unavailable(error)) => {
                                warn!(%error, "job log not copied yet; trying again");
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Seals the ended attempts among `ids` whose files are copied whole (or up to the
    /// cap), all in one statement, and stops copying them; the others are tried again at
    /// the next look.
    fn seal_ended(&mut self, ids: &[JobId]) {
        let ready: Vec<(JobId, u32)> = ids
            .iter()
            .filter_map(|id| {
                let job = self.jobs.get(id)?;
                let attempt = job.ended_attempt?;
                let file_bytes = std::fs::metadata(&job.path).map_or(0, |metadata| metadata.len());
                let capped = job.db_offset.is_some_and(|db_offset| db_offset >= job.cap_bytes);
                (file_bytes <= job.local_offset || capped).then_some((*id, attempt))
            })
            .collect();
        if ready.is_empty() {
            return;
        }
        let Some(connection) = self.connection() else { return };
        match connection.seal_all(&ready) {
            Ok(()) => {
                for (id, _) in &ready {
                    self.jobs.remove(id);
                }
            }
            Err(error) => warn!(%error, "job logs not sealed yet; trying again"),
        }
    }

    /// The next piece of each job's file that is not in the database yet.
    fn next_pieces(&mut self, ids: &[JobId]) -> Vec<LogAppend> {
        let mut pieces = Vec::new();
        for id in ids {
            // The database's end is asked only of a job that printed something (most
            // jobs of a busy daemon print nothing).
            let Some(job) = self.jobs.get(id) else { continue };
            let file_bytes = std::fs::metadata(&job.path).map_or(0, |metadata| metadata.len());
            if file_bytes <= job.local_offset {
                continue;
            }
            let Some(db_offset) = self.db_offset(*id) else { continue };
            let Some(job) = self.jobs.get_mut(id) else { continue };
            let room = job.cap_bytes.saturating_sub(db_offset);
            if room == 0 {
                continue;
            }
            match read_piece(&job.path, job.local_offset, room.min(LOG_CHUNK_BYTES_MAX as u64)) {
                Ok(bytes) if !bytes.is_empty() => {
                    pieces.push(LogAppend { job_id: *id, start_offset: db_offset, bytes });
                }
                Ok(_) => {}
                Err(error) => debug!(%error, job_id = %id, "job log not readable yet"),
            }
        }
        pieces
    }

    /// Where `id`'s log ends in the database, asked once per job.
    fn db_offset(&mut self, id: JobId) -> Option<u64> {
        if let Some(offset) = self.jobs.get(&id)?.db_offset {
            return Some(offset);
        }
        let end = match self.connection()?.end(id) {
            Ok(end) => end,
            Err(error) => {
                warn!(%error, "cannot read where a job log ends in the database; trying again");
                return None;
            }
        };
        self.jobs.get_mut(&id)?.db_offset = Some(end);
        Some(end)
    }

    fn copied(&mut self, pieces: &[LogAppend]) {
        for piece in pieces {
            if let Some(job) = self.jobs.get_mut(&piece.job_id) {
                job.local_offset += piece.bytes.len() as u64;
                job.db_offset = Some(piece.start_offset + piece.bytes.len() as u64);
            }
        }
    }
}

/// Up to `max_bytes` of the file from `offset` (nothing when it ends there or is missing).
fn read_piece(path: &Path, offset: u64, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes)?;
    Ok(bytes)
}
