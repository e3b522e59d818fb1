//! The wire types of API.md: params and results of every method, the job view and the
//! error object. One definition serves the daemon (which builds its answers from them),
//! the [`Client`](crate::Client) and the published OpenRPC schemas ([`crate::openrpc`]).
//!
//! Params refuse unknown fields (the daemon does too). Results accept unknown fields, so
//! that a client keeps working against a daemon that added one. A field that is absent
//! from a param is left out when serialized; `null` means absent to the daemon.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The nine states of a job. The last six are terminal: a terminal state never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Queued,
    Scheduled,
    Running,
    Done,
    Failed,
    Cancelled,
    Superseded,
    SkippedTtl,
    SkippedDeadline,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Scheduled | JobState::Running)
    }
}

/// `dev.enqueue.v1` params (and a recurring job's `job`, where `generation` and
/// `schedule` are refused: each slot brings its own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueParams {
    /// 1–64 chars of `A-Za-z0-9_.:-`.
    pub job_type: String,
    /// 1–64 chars of `a-z0-9_.-`.
    pub queue: String,
    /// 1–512 bytes, no control characters.
    pub subject_key: String,
    /// Absent = one above the highest known for the subject (1 for a new subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Any JSON, at most 1 MiB serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Higher first; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Present = a subprocess job; absent = the in-process handler of `job_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Exec>,
    /// 1–100, default 1 (no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// One attempt may run this long (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Not started within this long of becoming due → `SKIPPED_TTL` (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Epoch ms: not started by then → `SKIPPED_DEADLINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    /// Waits until that job is `DONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_job_id: Option<String>,
    /// ≤ 128 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// ≤ 128 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_group_id: Option<String>,
    /// ≤ 128 chars; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// W3C Trace Context (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`): the job's
    /// `trace_id` is then its trace id, and the job's spans continue that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EnqueueParams {
    /// The three required fields; everything else at its default.
    pub fn new(job_type: impl Into<String>, queue: impl Into<String>, subject_key: impl Into<String>) -> Self {
        EnqueueParams {
            job_type: job_type.into(),
            queue: queue.into(),
            subject_key: subject_key.into(),
            ..EnqueueParams::default()
        }
    }
}

/// A subprocess: `command` with `args`, in `cwd`, with `env` added to the allowlist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
}

/// Delay before attempt n+1 = min(base_ms·factorⁿ⁻¹, max_ms)·(1 ± jitter); each key
/// absent (or null) takes its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default)]
    pub base_ms: Option<u64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub max_ms: Option<u64>,
    #[serde(default)]
    pub jitter: Option<f64>,
}

/// `{"at": epoch_ms}` or `{"delay_ms": n}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub at: Option<u64>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    pub wait_for_idle: Option<bool>,
    #[serde(default)]
    pub require_charging: Option<bool>,
    #[serde(default)]
    pub wait_for_event: Option<String>,
}

/// What an enqueue (or a retry) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnqueueResult {
    pub job_id: String,
    pub queue: String,
    /// `QUEUED`, `SCHEDULED` or `SUPERSEDED` (a deduplicated enqueue: the existing job's).
    pub state: JobState,
    pub generation: u64,
    pub deduplicated: bool,
}

/// `dev.enqueue_batch.v1` params: 1–1000 jobs, all or nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBatchParams {
    #[schemars(length(min = 1, max = 1000))]
    pub jobs: Vec<EnqueueParams>,
}

/// The results of `dev.enqueue_batch.v1` (in order) and of `dev.retry.v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnqueueResults {
    pub results: Vec<EnqueueResult>,
}

/// `dev.cancel.v1` params: at least one; several given, a job must match all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_group_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelResult {
    pub cancelled_count: u64,
}

/// Params naming one job (`dev.get.v1`, `dev.retry.v1` by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIdParams {
    pub job_id: String,
}

/// `dev.wait.v1` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    pub job_id: String,
    #[schemars(range(max = 300000))]
    pub timeout_ms: u64,
}

/// `dev.wait.v1` result: the job view once terminal, or the view at the timeout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WaitResult {
    TimedOut(Box<WaitTimedOut>),
    Ended(Box<JobView>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaitTimedOut {
    /// Always true.
    pub timed_out: bool,
    pub job: JobView,
}

impl WaitResult {
    /// The job as the answer shows it, ended or not.
    pub fn job(&self) -> &JobView {
        match self {
            WaitResult::TimedOut(timed_out) => &timed_out.job,
            WaitResult::Ended(job) => job,
        }
    }
}

/// `ASC` (default) or `DESC`, by enqueue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Sort {
    #[serde(rename = "ASC")]
    Asc,
    #[serde(rename = "DESC")]
    Desc,
}

/// The filter of `dev.query_jobs.v1` and `dev.retry.v1`: every given key must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<JobState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_key_prefix: Option<String>,
    /// Epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<u64>,
}

/// `dev.query_jobs.v1` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryJobsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<JobFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
    /// 1–200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// Opaque: the `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of jobs: at most `limit` items and 8 MiB of JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Null when no further item existed at the time of the call.
    pub next_cursor: Option<String>,
}

/// `dev.event.v1` params (and `dev.recurring.delete.v1`'s): a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameParams {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventResult {
    pub released_count: u64,
}

/// `logs.tail.v1` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsTailParams {
    pub job_id: String,
    /// Bytes from the start of the log; default 0.
    #[serde(default)]
    pub offset: u64,
    /// Bytes, default 65536, at most 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub limit: Option<u64>,
}

/// `logs.tail.v1` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogChunk {
    /// UTF-8 text; never splits a character; invalid bytes become U+FFFD.
    pub chunk: String,
    pub next_offset: u64,
    /// True in the answer whose `next_offset` is the end of the log of an ended job.
    pub eof: bool,
}

/// `logs.follow.v1` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsFollowParams {
    pub job_id: String,
    #[serde(default)]
    pub offset: u64,
}

/// A notification of `logs.follow.v1` (method `logs.chunk`). The last one, once the job
/// is terminal and its log drained, is `{"chunk": "", "next_offset", "eof": true}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FollowChunk {
    pub chunk: String,
    pub next_offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eof: Option<bool>,
}

/// Params of methods that take none: `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `admin.stats.v1` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    pub queues: Vec<QueueStats>,
    pub system: SystemStats,
    /// The daemons sharing the store (Postgres), by id; on SQLite only this daemon, with
    /// no lease.
    #[serde(default)]
    pub nodes: Vec<NodeStats>,
}

/// One daemon of `admin.stats.v1`'s `nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeStats {
    pub id: String,
    /// Wall-clock epoch ms (the database's clock) at which its lease runs out; `null` on
    /// SQLite (one daemon, no lease).
    pub lease_expires_at: Option<u64>,
    /// Its jobs that hold a worker (`RUNNING`, or being stopped).
    pub running: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueStats {
    pub name: String,
    pub queued: u64,
    pub scheduled: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub superseded: u64,
    /// `SKIPPED_TTL` and `SKIPPED_DEADLINE`.
    pub skipped: u64,
    /// Null when no job of the queue has started.
    pub avg_wait_ms: Option<u64>,
    pub paused: bool,
    /// How long the oldest eligible `QUEUED` job has waited; 0 when none.
    pub oldest_wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SystemStats {
    /// Percent.
    pub cpu_usage: u32,
    /// Percent.
    pub memory_usage: u32,
    pub is_idle: bool,
    pub on_battery: bool,
    /// Bytes.
    pub db_size: u64,
    /// Bytes.
    pub db_wal_size: u64,
    pub uptime_ms: u64,
    pub version: String,
}

/// `admin.maintenance.v1` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_vacuum: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceResult {
    pub deleted_jobs: u64,
    pub deleted_logs: u64,
    pub vacuumed: bool,
    pub db_size_before: u64,
    pub db_size_after: u64,
}

/// `admin.queue.pause.v1` and `admin.queue.resume.v1` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    pub queue: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueuePaused {
    pub queue: String,
    pub paused: bool,
}

/// `dev.retry.v1` params: `job_id`, or `filter` with an optional `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<JobFilter>,
    /// 1–1000, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// `dev.recurring.set.v1` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurringSetParams {
    /// 1–128 chars of `A-Za-z0-9_.:-`.
    pub name: String,
    /// Five fields: `m h dom mon dow`.
    pub cron: String,
    /// `UTC` (default) or an IANA name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Enqueue params without `generation` and `schedule`.
    pub job: EnqueueParams,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecurringSetResult {
    pub name: String,
    /// Epoch ms of the next slot; null when the expression has none left.
    pub next_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecurringDeleteResult {
    pub deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecurringList {
    pub items: Vec<RecurringJob>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecurringJob {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub job: EnqueueParams,
    pub next_at: Option<u64>,
    pub last_enqueued_job_id: Option<String>,
}

/// `admin.reload.v1` result (a daemon extra: reads `config.toml` again, as SIGHUP does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadResult {
    pub reloaded: bool,
    pub changed: Vec<String>,
    pub restart_required: Vec<String>,
}

/// `admin.ui_login.v1` result: a one-time sign-in link to the web dashboard (single use,
/// valid 60 s). Only given over the Unix socket or with the bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UiLogin {
    /// `http://HOST:PORT/ui/login?code=…`
    pub url: String,
    /// Epoch ms after which the code is refused.
    pub expires_at: u64,
}

/// `SUBPROCESS` (the job has `exec`) or `IN_PROCESS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionMode {
    Subprocess,
    InProcess,
}

/// A job as clients see it. Times are wall-clock epoch ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    pub id: String,
    pub queue: String,
    pub job_type: String,
    pub subject_key: String,
    pub generation: u64,
    pub state: JobState,
    pub priority: i32,
    pub payload: Value,
    pub execution_mode: ExecutionMode,
    pub pid: Option<u32>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: u64,
    pub scheduled_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub exit_code: Option<i32>,
    pub error: Option<JobError>,
    pub result_summary: Option<Value>,
    pub artifacts: Vec<Artifact>,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
    pub parent_job_id: Option<String>,
    pub trace_id: String,
    /// The ended job that `dev.retry.v1` enqueued this one again for.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// The daemon (node id) that runs or ran the job's last attempt; `null` before its
    /// first attempt.
    #[serde(default)]
    pub node: Option<String>,
}

/// Why an attempt failed (or a job was skipped or cancelled).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobError {
    pub kind: String,
    pub message: String,
}

/// A file a subprocess left in `$SEMANTICA_ARTIFACT_DIR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Artifact {
    /// Relative path.
    pub name: String,
    pub bytes: u64,
}

/// A JSON-RPC error as API.md shapes it: every error of the daemon has `data` with its
/// `kind`, JSON-RPC's own (-32700, -32600, -32601) included. (Not yet: jsonrpsee's answer
/// to a WebSocket message that is no JSON-RPC request at all.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    pub data: ErrorData,
}

/// `error.data`: `kind` always; the rest where it applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorData {
    /// snake_case, e.g. `invalid_format`, `not_found`, `throttled`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The failing param as a dotted path (`exec.command`, `backoff.factor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// In a batch: the failing job's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// On 4002: the job's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// On 4003: when to try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// On 4001: the unknown job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// The codes of API.md's "Errors".
pub mod codes {
    pub const VALIDATION_ERROR: i32 = 4000;
    pub const NOT_FOUND: i32 = 4001;
    pub const CONFLICT: i32 = 4002;
    pub const THROTTLED: i32 = 4003;
    pub const UNAUTHORIZED: i32 = 4010;
    pub const INTERNAL_ERROR: i32 = 5000;
    pub const DB_ERROR: i32 = 5001;
    pub const SYSTEM_ERROR: i32 = 5002;

    /// Every contract code with its name and when it is given.
    pub const ALL: [(i32, &str, &str); 8] = [
        (VALIDATION_ERROR, "VALIDATION_ERROR", "params missing, wrong type, out of range or too large; data.field names the field as a dotted path, data.index the failing job of a batch"),
        (NOT_FOUND, "NOT_FOUND", "unknown job id"),
        (CONFLICT, "CONFLICT", "the transition is not allowed from the job's state (data.state holds it)"),
        (THROTTLED, "THROTTLED", "rate limit or back-pressure; data.retry_after_ms says when to try again"),
        (UNAUTHORIZED, "UNAUTHORIZED", "TCP call without the right bearer token"),
        (INTERNAL_ERROR, "INTERNAL_ERROR", "a bug; the daemon keeps serving"),
        (DB_ERROR, "DB_ERROR", "SQLite I/O, disk full, corruption; nothing acknowledged is lost"),
        (SYSTEM_ERROR, "SYSTEM_ERROR", "the OS refused (spawn failed, out of file descriptors)"),
    ];
}
