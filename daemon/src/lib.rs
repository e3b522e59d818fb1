//! # semantica (daemon)
//!
//! The composition root: it wires `semantica-core`'s engine to the adapters and serves
//! the wire contract of API.md; the `semantica` binary is its front door (`serve` and the
//! CLI). It decides nothing about jobs: every rule is core's, and every byte of the wire
//! format is converted here and nowhere deeper.

pub mod bench;
pub mod clock_state;
pub mod config;
pub mod metrics;
pub mod otel;
pub mod pg_shared;
pub mod rpc;
pub mod serve;
pub mod service;
pub mod time_args;
pub mod ui;
pub mod wire;
