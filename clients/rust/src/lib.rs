//! # semantica-client
//!
//! The wire contract of the semantica daemon (API.md) as Rust types ([`types`]), the
//! OpenRPC document generated from them ([`openrpc`]), an async client ([`Client`]) and a
//! blocking one ([`blocking::Client`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), semantica_client::Error> {
//! use semantica_client::{types::EnqueueParams, Client};
//! let client = Client::new()?; // $SEMANTICA_HOME/daemon.json's socket, or SEMANTICA_URL
//! let job = client.enqueue(&EnqueueParams::new("noop", "default", "readme")).await?;
//! let ended = client.wait(&job.job_id, std::time::Duration::from_secs(30)).await?;
//! println!("{:?}", ended.job().state);
//! # Ok(()) }
//! ```
//!
//! It promises one definition of each wire type: the daemon builds its answers from
//! these types and publishes their schemas, so an answer cannot drift from its schema.
//! It must never hold a rule of the engine: params are judged by the daemon.

pub mod blocking;
mod client;
mod error;
pub mod openrpc;
pub mod types;

pub use client::{Client, Config, DaemonInfo, Discovery, ENSURE_DAEMON_WAIT, METHODS};
pub use error::{Error, ErrorKind, RpcError};
