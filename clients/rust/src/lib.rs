//! # semantica-client
//!
//! The wire contract of the semantica daemon (API.md) as Rust types ([`types`]), the
//! OpenRPC document generated from them ([`openrpc`]), and an async client.
//!
//! It promises one definition of each wire type: the daemon builds its answers from
//! these types and publishes their schemas, so an answer cannot drift from its schema.
//! It must never hold a rule of the engine: params are judged by the daemon.

pub mod openrpc;
pub mod types;
