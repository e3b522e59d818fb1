//! # semantica-adapters
//!
//! The real implementations of `semantica-core`'s ports: the wall clock, random UUID job
//! ids and a randomly seeded generator for back-off jitter, the SQLite store, and the
//! Postgres store for several daemons on one database (`postgres`). The
//! JSON-RPC server and client, the executors and the system probe join them here.
//!
//! Adapters hold no rule of the engine: they move bytes and read the world, and every
//! decision is core's.

pub mod clock;
pub mod exec;
pub mod histogram;
pub mod ids;
mod job_columns;
pub mod logs;
pub mod postgres;
pub mod probe;
mod queue_counts;
pub mod sqlite;
pub mod trace;

pub use clock::{engine_to_wall_ms, wall_to_engine_ms, ClockState, OsTime, SystemClock, TimeSource};
pub use ids::{random_bytes, random_seed, UuidIds};
pub use postgres::{NodeLease, PgListener, PgOptions, PgStore};
pub use sqlite::{OpenError, SqliteOptions, SqliteStore, Synchronous};
