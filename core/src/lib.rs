//! # semantica-core
//!
//! The engine of Semantica: every rule of the job queue (validation, states, pop order,
//! supersede, subject exclusivity, cancel races, retry and back-off, TTL and deadline,
//! schedules, conditions, parent/child chains, restart recovery) as one deterministic
//! state machine, [`Engine`].
//!
//! **Promises.** The same inputs, at the same times, over the same store contents, give
//! the same steps. A terminal state never changes. Every write of a step is committed as
//! one unit before anything of the step is acted on.
//!
//! **Never.** No I/O, no threads, no clock, no global randomness: time comes in as
//! `now_ms`, ids and randomness through the [`ports`], storage through [`Store`]. The
//! crate's `clippy.toml` forbids the usual ways around that.

pub mod backoff;
pub mod cron;
pub mod engine;
pub mod id;
pub mod job;
pub mod limits;
pub mod memstore;
pub mod ports;
pub mod request;
pub mod store;
mod tx;

pub use engine::{
    Action, CancelRequest, Config, Engine, Enqueued, Input, Memory, Outcome, RecurringRequest, Rejection, Reply,
    Report, RetryRequest, Step, Throttle,
};
pub use id::JobId;
pub use job::{Artifact, Backoff, Conditions, ErrorKind, ExecSpec, Job, JobError, JobState};
pub use memstore::MemStore;
pub use ports::{Clock, Executor, IdGen, KillOrder, Rng, SeededIds, SplitMix64, SystemProbe, SystemState};
pub use request::{BackoffRequest, EnqueueRequest, ExecRequest, ScheduleRequest, ValidationError, ValidationKind};
pub use store::{JobPage, JobQuery, QueueStats, Recurring, Store, StoreError, StoreResult, Write, WriteSet};
