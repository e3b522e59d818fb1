//! # semantica-fuzz
//!
//! The bodies of the fuzz targets in `fuzz_targets/`, as plain functions of `&[u8]`, so
//! that the same code runs under libFuzzer (`cargo fuzz run <target>`) and, for the
//! targets that need only `semantica-core`, under proptest on the stable toolchain in CI
//! (`core/tests/fuzz_harness.rs`). Every function promises one thing: for any bytes it
//! returns normally. A panic is a finding.
//!
//! `core_targets` and the rule checker it drives (`core/tests/harness/mod.rs`) are
//! compiled into this crate and into core's test by `#[path]`: one source, two builds,
//! no edit of `core/src`.

#[path = "../../core/tests/harness/mod.rs"]
pub mod harness;

pub mod bytes;

pub mod core_targets;

pub mod edge_targets;

pub mod store_targets;

pub mod rpc_targets;

pub use edge_targets::{log_chunk, wire_enqueue};
pub use rpc_targets::rpc_call;
pub use store_targets::hostile_database;
