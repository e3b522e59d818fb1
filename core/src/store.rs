//! The `Store` port: where jobs live between engine steps.
//!
//! The engine reads through the query methods and hands back one [`WriteSet`] per step;
//! the driver commits it with [`Store::commit`] as one atomic unit before acting on any
//! other effect of the step. Nothing here names a database: every query is a question
//! the engine asks, which an SQL store answers with an index and a reference store with
//! a scan. [`crate::memstore::MemStore`] is the reference model of this contract.

use std::fmt;

use crate::id::JobId;
use crate::job::{Job, JobState};
use crate::request::EnqueueRequest;

/// One write of a step. Updates and deletes name the version they were decided on; a
/// store that finds another version refuses the whole set with [`StoreError::Conflict`]
/// (so several engines may share one database without losing each other's writes).
#[derive(Clone, PartialEq, Debug)]
pub enum Write {
    Insert(Job),
    /// `job.version` is the new version, one above the version the engine read.
    Update(Job),
    Delete {
        id: JobId,
        version: u64,
    },
    /// Pause (`true`) or resume a queue; stored so that it survives a restart.
    QueuePaused {
        queue: String,
        paused: bool,
    },
    /// Create or replace the recurring job of that name.
    PutRecurring(Recurring),
    DeleteRecurring {
        name: String,
    },
    /// A guard, not a change: the set ended attempts of `node` because its lease expired
    /// (`Input::NodeLost`). A store that keeps node leases (Postgres) commits the set only
    /// while that lease is still expired (or the node unknown), holding the node's lease
    /// row until COMMIT so that the node cannot renew or register in between; otherwise it
    /// refuses the whole set with `Conflict`. A store without leases ignores it.
    NodeLeaseExpired {
        node: String,
    },
}

/// A recurring job: `job` is enqueued at every slot of `cron` in `timezone`.
#[derive(Clone, PartialEq, Debug)]
pub struct Recurring {
    /// 1..=128 characters of `A-Za-z0-9_.:-`.
    pub name: String,
    /// Five fields, as given.
    pub cron: String,
    /// An IANA name, or `UTC`.
    pub timezone: String,
    /// What each slot enqueues: `dev.enqueue.v1` params without generation or schedule.
    pub job: EnqueueRequest,
    /// The earliest slot (epoch ms) that has not fired; `None` when the expression has
    /// no slot left.
    pub next_at_ms: Option<u64>,
    /// The latest slot that fired, and the job its enqueue answered with.
    pub last_slot_ms: Option<u64>,
    pub last_enqueued_job_id: Option<JobId>,
}

/// The writes of one engine step, in the order the engine first touched each job. A job
/// appears at most once per set, and no write changes a job's `seq`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct WriteSet {
    pub writes: Vec<Write>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// The jobs the set inserts or updates, in write order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> + '_ {
        self.writes.iter().filter_map(|write| match write {
            Write::Insert(job) | Write::Update(job) => Some(job),
            _ => None,
        })
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StoreError {
    /// A write was decided on a version that is no longer current; nothing was written.
    /// The driver may run the same input again.
    Conflict { job_id: JobId, detail: String },
    /// The store could not read or write (I/O error, disk full, locked); nothing of the
    /// failed commit is visible. Maps to code 5001.
    Unavailable(String),
    /// The stored data breaks the contract (a row that does not decode). Maps to 5001.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict { job_id, detail } => write!(f, "write conflict on job {job_id}: {detail}"),
            StoreError::Unavailable(detail) => write!(f, "store unavailable: {detail}"),
            StoreError::Corrupt(detail) => write!(f, "store corrupt: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// `dev.query_jobs.v1` as the store sees it. The edge turns its opaque cursor into
/// `after_seq`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct JobQuery {
    pub states: Vec<JobState>,
    pub queues: Vec<String>,
    pub job_type: Option<String>,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
    pub subject_key_prefix: Option<String>,
    pub created_after_ms: Option<u64>,
    pub descending: bool,
    /// 1..=200.
    pub limit: usize,
    /// Only jobs after this enqueue sequence (in the direction of the sort).
    pub after_seq: Option<u64>,
    /// Stop once the items hold at least this many bytes of [`Job::data_bytes`] (always
    /// with at least one item); `next_after_seq` then continues after the last. Bounds
    /// what a page of large jobs holds in memory. `None`: only `limit` bounds it.
    pub bytes_max: Option<usize>,
}

impl JobQuery {
    pub const LIMIT_MAX: usize = 200;

    /// Whether a page holding `items` jobs of `bytes` data bytes is full by bytes.
    pub fn full_by_bytes(&self, items: usize, bytes: usize) -> bool {
        items >= 1 && self.bytes_max.is_some_and(|max| bytes >= max)
    }

    /// The filter part, as every store must apply it.
    pub fn matches(&self, job: &Job) -> bool {
        (self.states.is_empty() || self.states.contains(&job.state))
            && (self.queues.is_empty() || self.queues.contains(&job.queue))
            && self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
            && self.tag.as_ref().is_none_or(|t| Some(t) == job.tag.as_ref())
            && self.chain_group_id.as_ref().is_none_or(|g| Some(g) == job.chain_group_id.as_ref())
            && self.subject_key_prefix.as_ref().is_none_or(|p| job.subject_key.starts_with(p.as_str()))
            && self.created_after_ms.is_none_or(|t| job.created_at_ms > t)
            && self.after_seq.is_none_or(|s| if self.descending { job.seq < s } else { job.seq > s })
    }
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Set when more matching jobs existed at the time of the call: the `seq` of the last
    /// item, to be passed back as `after_seq`.
    pub next_after_seq: Option<u64>,
}

/// Counts of one queue for `admin.stats.v1`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct QueueStats {
    pub queue: String,
    /// Indexed like [`JobState::ALL`].
    pub counts: [u64; 9],
    /// Mean of `started_at - due_at` over the queue's jobs that have started.
    pub avg_wait_ms: Option<u64>,
    /// The earliest `due_at_ms` of the queue's `QUEUED` jobs.
    pub oldest_queued_due_ms: Option<u64>,
}

impl QueueStats {
    pub fn count(&self, state: JobState) -> u64 {
        self.counts[state as usize]
    }
}

/// Reads the engine asks for, and the one write. Every list comes back in enqueue order
/// (`seq` ascending) unless it says otherwise, and holds at most `limit` jobs.
///
/// "Active" below means non-terminal or `reap_pending`: a job the engine may still move
/// or whose process may still be alive.
pub trait Store {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>>;

    /// The highest generation ever inserted for the subject, also when that job has since
    /// been purged.
    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>>;

    /// The highest `seq` ever inserted (0 for an empty store).
    fn max_seq(&self) -> StoreResult<u64>;

    /// Active jobs of a subject.
    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>>;

    /// Ids of the subject's jobs that occupy it (`RUNNING` or `reap_pending`): what a
    /// claim asks of the job it is about to start, without reading whole jobs.
    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>>;

    /// `QUEUED` jobs of `queue` with `priority >= min_priority`, whose subject has no job
    /// that is `RUNNING` or `reap_pending`, in pop order: priority descending, then `seq`;
    /// with `after` (a priority and a seq), only those that come after it in that order,
    /// so that a list can be continued where it ended.
    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>>;

    /// Names of the queues that hold at least one `QUEUED` job, sorted.
    fn ready_queues(&self) -> StoreResult<Vec<String>>;

    /// Jobs that hold a worker slot, in one queue or in all: `RUNNING`, or `reap_pending`
    /// (a process being stopped still occupies its slot until it is gone).
    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize>;

    /// Jobs with `wake_at_ms <= now_ms`, by `wake_at_ms` then `seq`.
    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>>;

    /// Jobs whose `wall_offset_ms` is set and differs from `offset_ms`: their absolute
    /// times were placed with another offset of the wall clock.
    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>>;

    /// Non-terminal jobs that carry the given tag and/or chain group (both when both).
    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>>;

    /// Non-terminal jobs whose `parent_job_id` is `parent`.
    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>>;

    /// `QUEUED`/`SCHEDULED` jobs waiting for the event `name` and not yet released by it.
    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>>;

    /// `QUEUED`/`SCHEDULED` jobs with `wait_for_idle` or `require_charging`.
    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>>;

    /// Jobs that are `RUNNING` or `reap_pending`.
    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>>;

    /// Jobs of `node` (`Job::node`) that are `RUNNING` or `reap_pending`. The default
    /// filters `process_holders`; SQL stores answer from an index.
    fn jobs_of_node(&self, node: &str, limit: usize) -> StoreResult<Vec<Job>> {
        let mut jobs = self.process_holders(usize::MAX)?;
        jobs.retain(|job| job.node.as_deref() == Some(node));
        jobs.truncate(limit);
        Ok(jobs)
    }

    /// `process_count` over the jobs of one node only. The default filters
    /// `process_holders`; SQL stores answer from an index.
    fn node_process_count(&self, queue: Option<&str>, node: &str) -> StoreResult<usize> {
        let jobs = self.process_holders(usize::MAX)?;
        Ok(jobs.iter().filter(|job| job.node.as_deref() == Some(node) && queue.is_none_or(|q| q == job.queue)).count())
    }

    /// Terminal, not `reap_pending` jobs finished before `finished_before_ms`.
    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>>;

    fn query(&self, query: &JobQuery) -> StoreResult<JobPage>;

    /// One entry per queue that has any job, sorted by name.
    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>>;

    /// The paused queues, sorted.
    fn paused_queues(&self) -> StoreResult<Vec<String>>;

    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>>;

    /// Every recurring job, by name (at most `limits::RECURRING_MAX`).
    fn recurring_list(&self) -> StoreResult<Vec<Recurring>>;

    /// Recurring jobs with `next_at_ms <= now_ms`, by `next_at_ms` then name.
    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>>;

    /// Applies every write or none.
    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()>;
}
