//! # semantica-sim
//!
//! A deterministic simulator for Semantica's engine: one thread, simulated time, the
//! real [`semantica_core::Engine`] over a real store (the reference `MemStore`, or the
//! daemon's SQLite store on a temporary file, or its Postgres store in a schema of its
//! own), a simulated executor, system probe
//! and clients, and injected faults (crashes at any step, failing store reads and commits,
//! late and duplicated executor reports). An invariant checker that shares no code with
//! the engine runs after every step; after the faults stop, a liveness phase must bring
//! every job to an end.
//!
//! **Promises.** A seed replays the same run, byte for byte of its trace, on any machine:
//! every random choice comes from the seed, time from the simulated clock, and the trace
//! hash is FNV-1a over a textual trace.
//!
//! **Never.** No clock, no threads, no global randomness, no hash-map iteration: only
//! `main.rs` may read the system time, to pick a seed when none is given. The one random
//! name, the SQLite backend's temporary directory, never enters the trace.

pub mod backend;
pub mod checker;
pub mod describe;
pub mod executor;
pub mod mutant;
pub mod postgres;
pub mod probe;
pub mod sim;
pub mod sqlite;
pub mod trace;
pub mod workload;

pub use backend::{Backend, BackendKind, FaultyStore};
pub use checker::{Checker, Observation, Violation};
pub use postgres::PostgresBackend;
pub use sim::{run, FaultRates, RunReport, SimOptions};
pub use sqlite::SqliteBackend;
