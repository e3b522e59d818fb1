//! Named maxima. Every list, batch, payload and loop of the engine is bounded by one of
//! these; back-pressure comes from them, not from running out of memory.

/// `job_type` and `queue`: characters.
pub const NAME_CHARS_MAX: usize = 64;
/// `subject_key`: bytes.
pub const SUBJECT_KEY_BYTES_MAX: usize = 512;
/// `payload`, serialized: 1 MiB.
pub const PAYLOAD_BYTES_MAX: usize = 1024 * 1024;
/// `tag`, `chain_group_id`, `trace_id`: characters.
pub const LABEL_CHARS_MAX: usize = 128;
/// `conditions.wait_for_event`: characters.
pub const EVENT_NAME_CHARS_MAX: usize = 128;
/// `max_attempts`.
pub const MAX_ATTEMPTS_MAX: u32 = 100;
/// Jobs in one `dev.enqueue_batch.v1`.
pub const BATCH_JOBS_MAX: usize = 1000;
/// Generations are stored as signed 64-bit integers by SQL stores.
pub const GENERATION_MAX: u64 = i64::MAX as u64;
/// Any epoch-ms time a client may give (`deadline`, `schedule.at`): year 9999.
pub const TIME_MS_MAX: u64 = 253_402_300_799_999;
/// Any duration a client may give (`timeout_ms`, `ttl_ms`, `schedule.delay_ms`): 10 years.
pub const DURATION_MS_MAX: u64 = 10 * 365 * 24 * 3_600_000;
/// `backoff.base_ms` and `backoff.max_ms`: 7 days.
pub const BACKOFF_MS_MAX: u64 = 7 * 24 * 3_600_000;
/// `backoff.factor`.
pub const BACKOFF_FACTOR_MAX: f64 = 100.0;
/// `exec.command`, each of `exec.args`, each `exec.env` entry, `exec.cwd`: bytes.
pub const EXEC_TEXT_BYTES_MAX: usize = 32 * 1024;
/// `exec.args`: entries.
pub const EXEC_ARGS_MAX: usize = 1024;
/// `exec.env`: entries.
pub const EXEC_ENV_MAX: usize = 256;
/// `result_summary` a process may leave behind: bytes.
pub const RESULT_SUMMARY_BYTES_MAX: usize = 64 * 1024;
/// Candidates a claim reads first: almost always the first of them starts, and every
/// job read costs a whole row decoded (four per claim were a fifth of a drain's writer
/// instructions). A claim whose candidate is held back reads `CLAIM_SCAN_MAX` next.
pub const CLAIM_SCAN_FIRST: usize = 1;
/// Candidates one claim looks at before it gives up for this call.
pub const CLAIM_SCAN_MAX: usize = 64;
/// Jobs one `ClaimBatch` starts at most (the daemon asks for one per free worker).
pub const CLAIM_BATCH_MAX: usize = 256;
/// Reports one `ReportBatch` records.
pub const REPORT_BATCH_MAX: usize = 256;
/// Jobs one `Tick` moves on; more due jobs make the engine ask to be woken again at once.
pub const TICK_JOBS_MAX: usize = 1000;
/// Live jobs one cancel by tag or group ends at most. A step holds every job it writes in
/// memory until it commits (100,000 cancelled in one step took 600 MiB), so a bigger match
/// is cancelled over several steps: the reply says `more` when a step was full, and the
/// daemon calls again within one `dev.cancel.v1`.
pub const CANCEL_ROUND_JOBS_MAX: usize = 1_000;

/// Jobs whose absolute times one step moves after a wall-clock step; ticks move the rest.
pub const RETIME_ROUND_JOBS_MAX: usize = 1_000;
/// Jobs one system change or one parent's end may touch, and the most one
/// `dev.cancel.v1` cancels over its rounds.
pub const FAN_OUT_JOBS_MAX: usize = 100_000;
/// Jobs one `Event` step releases. A step holds every job it writes in memory until it
/// commits, so an event with more waiters is released over several steps: a reply of
/// exactly this many means "call again" (the daemon does, within one `dev.event.v1`).
pub const EVENT_ROUND_JOBS_MAX: usize = 2_000;
/// Jobs of a lost node one `NodeLost` step ends; a full round makes the reply say `more`.
pub const NODE_LOST_ROUND_JOBS_MAX: usize = 1_000;
/// Characters of a recurring job's cron expression.
pub const CRON_CHARS_MAX: usize = 256;
/// Characters of a recurring job's name (`A-Za-z0-9_.:-`).
pub const RECURRING_NAME_CHARS_MAX: usize = 128;
/// Recurring jobs one database holds: each costs a row and a look at every tick.
pub const RECURRING_MAX: usize = 10_000;
/// Recurring slots one `Tick` fires; more due make the engine ask to be woken at once.
pub const TICK_RECURRING_MAX: usize = 100;
/// Jobs one `dev.retry.v1` by filter retries at most (`limit`, default 100).
pub const RETRY_JOBS_MAX: usize = 1_000;
pub const RETRY_JOBS_DEFAULT: usize = 100;
