//! The job: its states and every field the engine keeps about it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::id::JobId;

/// The nine states of a job. The last six are terminal: once a job holds one, it never
/// changes again (asserted by the engine before every write).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum JobState {
    /// Eligible now; waits only for a free worker, its subject, or the throttle.
    Queued,
    /// Waits for a time (schedule or retry back-off), a condition, an event or a parent.
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
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Scheduled,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Superseded,
        JobState::SkippedTtl,
        JobState::SkippedDeadline,
    ];

    pub const fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Scheduled | JobState::Running)
    }

    /// The ends that `dev.retry.v1` may enqueue a job again from.
    pub const fn is_retryable(self) -> bool {
        matches!(self, JobState::Failed | JobState::Cancelled | JobState::SkippedTtl | JobState::SkippedDeadline)
    }

    /// A job that has not started its current attempt yet.
    pub const fn is_waiting(self) -> bool {
        matches!(self, JobState::Queued | JobState::Scheduled)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Scheduled => "SCHEDULED",
            JobState::Running => "RUNNING",
            JobState::Done => "DONE",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Superseded => "SUPERSEDED",
            JobState::SkippedTtl => "SKIPPED_TTL",
            JobState::SkippedDeadline => "SKIPPED_DEADLINE",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the nine state names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<JobState, UnknownState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == text).ok_or_else(|| UnknownState(text.to_owned()))
    }
}

/// Why an attempt or a job did not succeed (`error.kind` on the wire).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ErrorKind {
    ExitCode,
    Signal,
    Timeout,
    DeadlineExceeded,
    TtlExpired,
    DaemonRestart,
    ParentFailed,
    Cancelled,
    HandlerError,
    SpawnFailed,
    /// The daemon that ran the attempt lost its lease (several daemons on one database).
    NodeLost,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::ExitCode,
        ErrorKind::Signal,
        ErrorKind::Timeout,
        ErrorKind::DeadlineExceeded,
        ErrorKind::TtlExpired,
        ErrorKind::DaemonRestart,
        ErrorKind::ParentFailed,
        ErrorKind::Cancelled,
        ErrorKind::HandlerError,
        ErrorKind::SpawnFailed,
        ErrorKind::NodeLost,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ExitCode => "exit_code",
            ErrorKind::Signal => "signal",
            ErrorKind::Timeout => "timeout",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::TtlExpired => "ttl_expired",
            ErrorKind::DaemonRestart => "daemon_restart",
            ErrorKind::ParentFailed => "parent_failed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::HandlerError => "handler_error",
            ErrorKind::SpawnFailed => "spawn_failed",
            ErrorKind::NodeLost => "node_lost",
        }
    }
}

impl FromStr for ErrorKind {
    type Err = String;

    fn from_str(text: &str) -> Result<ErrorKind, String> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| format!("unknown error kind {text:?}"))
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> JobError {
        JobError { kind, message: message.into() }
    }
}

/// A subprocess job's command line. Absent on a job = the in-process handler of its type.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ExecSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

/// Retry back-off. The delay before attempt n+1 is `min(base·factorⁿ⁻¹, max)·(1 ± jitter)`,
/// never more than `max_ms`; see [`crate::backoff`].
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Backoff {
    pub base_ms: u64,
    pub factor: f64,
    pub max_ms: u64,
    pub jitter: f64,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff { base_ms: 1_000, factor: 2.0, max_ms: 300_000, jitter: 0.1 };
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::DEFAULT
    }
}

/// What must hold before a job may start, beyond its time and its parent.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Conditions {
    pub wait_for_idle: bool,
    pub require_charging: bool,
    pub wait_for_event: Option<String>,
}

impl Conditions {
    pub fn needs_system(&self) -> bool {
        self.wait_for_idle || self.require_charging
    }
}

/// A file a subprocess left in its artifact directory.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Artifact {
    pub name: String,
    pub bytes: u64,
}

/// Everything the engine knows about one job. Stores keep it whole; the engine is the only
/// code that decides a new value for any field.
#[derive(Clone, PartialEq, Debug)]
pub struct Job {
    pub id: JobId,
    /// Enqueue sequence: strictly increasing across all jobs; breaks priority ties.
    pub seq: u64,
    /// Bumped by every write; stores apply an update only over the version it was read at.
    pub version: u64,
    pub queue: String,
    pub job_type: String,
    pub subject_key: String,
    pub generation: u64,
    pub state: JobState,
    pub priority: i32,
    /// The payload as serialized JSON text (`null` when none was given).
    pub payload_json: String,
    pub exec: Option<ExecSpec>,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub timeout_ms: Option<u64>,
    pub ttl_ms: Option<u64>,
    /// The deadline on the engine's timeline: `deadline_wall_ms` minus the wall clock's
    /// offset in `wall_offset_ms` (or as given, for a job stored before either existed).
    pub deadline_ms: Option<u64>,
    /// `deadline` as the client gave it: wall-clock epoch ms.
    pub deadline_wall_ms: Option<u64>,
    /// `schedule.at` as the client gave it: wall-clock epoch ms. Until that time has come,
    /// `due_at_ms` is where it falls on the engine's timeline.
    pub at_wall_ms: Option<u64>,
    /// The wall clock's offset (ahead of engine time) that `deadline_ms`, and `due_at_ms`
    /// while `schedule.at` has not come, were placed with. `None` once nothing of the job
    /// follows the wall clock (it ended, or its `at` came and it has no deadline).
    pub wall_offset_ms: Option<i64>,
    pub conditions: Conditions,
    /// `conditions.wait_for_event` has been signalled since the job was enqueued.
    pub event_released: bool,
    pub parent_job_id: Option<JobId>,
    /// The parent has not reached `DONE` yet.
    pub parent_pending: bool,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
    pub trace_id: String,
    pub created_at_ms: u64,
    /// When the current attempt becomes due (schedule, or the end of a retry back-off).
    pub due_at_ms: u64,
    pub started_at_ms: Option<u64>,
    /// When the job became terminal: set exactly then, and never while it is live (every
    /// write asserts it), so a store may tell live jobs by it.
    pub finished_at_ms: Option<u64>,
    /// The earliest time at which time alone changes this job (schedule due, TTL, deadline,
    /// timeout); `None` for terminal jobs. Stores index it to find due work.
    pub wake_at_ms: Option<u64>,
    pub pid: Option<u32>,
    /// The OS's start time of `pid`, so that a recycled pid is never mistaken for ours.
    pub pid_started_at: Option<u64>,
    /// A process (or handler) of this job may still be alive although the engine has moved
    /// the job on (cancel, timeout, deadline). The subject stays busy until it is reaped.
    pub reap_pending: bool,
    pub exit_code: Option<i32>,
    pub error: Option<JobError>,
    pub result_summary_json: Option<String>,
    pub artifacts: Vec<Artifact>,
    /// The ended job that `dev.retry.v1` enqueued this one again for.
    pub retry_of: Option<JobId>,
    /// The node (daemon) that runs or ran the job's last attempt, set by the claim from
    /// [`crate::engine::Config::node`]; `None` before its first attempt.
    pub node: Option<String>,
}

impl Job {
    /// The bytes of what a client gave or a run left (payload, exec, labels, result,
    /// error, artifacts): the part of a job that can be large. A page of jobs is bounded
    /// by this (`JobQuery::bytes_max`).
    pub fn data_bytes(&self) -> usize {
        let exec = self.exec.as_ref().map_or(0, |exec| {
            exec.command.len()
                + exec.args.iter().map(String::len).sum::<usize>()
                + exec.env.iter().map(|(key, value)| key.len() + value.len()).sum::<usize>()
                + exec.cwd.as_ref().map_or(0, String::len)
        });
        let labels =
            [&self.tag, &self.chain_group_id].iter().map(|label| label.as_ref().map_or(0, String::len)).sum::<usize>();
        self.payload_json.len()
            + exec
            + self.subject_key.len()
            + self.trace_id.len()
            + labels
            + self.result_summary_json.as_ref().map_or(0, String::len)
            + self.error.as_ref().map_or(0, |error| error.message.len())
            + self.artifacts.iter().map(|artifact| artifact.name.len()).sum::<usize>()
    }

    /// A job with every option off and nothing decided yet: a value for stores, tools and
    /// tests to start from (`Job { subject_key, ..Job::blank(id) }`). The engine builds
    /// its jobs field by field from a validated request.
    pub fn blank(id: JobId) -> Job {
        Job {
            id,
            seq: 1,
            version: 1,
            queue: "default".to_owned(),
            job_type: "noop".to_owned(),
            subject_key: "subject".to_owned(),
            generation: 1,
            state: JobState::Queued,
            priority: 0,
            payload_json: "null".to_owned(),
            exec: None,
            attempts: 0,
            max_attempts: 1,
            backoff: Backoff::DEFAULT,
            timeout_ms: None,
            ttl_ms: None,
            deadline_ms: None,
            deadline_wall_ms: None,
            at_wall_ms: None,
            wall_offset_ms: None,
            conditions: Conditions::default(),
            event_released: false,
            parent_job_id: None,
            parent_pending: false,
            tag: None,
            chain_group_id: None,
            trace_id: String::new(),
            created_at_ms: 0,
            due_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            wake_at_ms: None,
            pid: None,
            pid_started_at: None,
            reap_pending: false,
            exit_code: None,
            error: None,
            result_summary_json: None,
            artifacts: Vec::new(),
            retry_of: None,
            node: None,
        }
    }

    /// A process of this job may be alive: its subject must not start another.
    pub fn occupies_subject(&self) -> bool {
        self.state == JobState::Running || self.reap_pending
    }
}
