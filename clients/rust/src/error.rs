//! What a call can end in besides its answer.

use std::fmt;

use serde_json::Value;

use crate::types::{codes, ErrorData};

/// A failed call: the daemon's JSON-RPC error, or no daemon to ask.
#[derive(Clone, Debug)]
pub enum Error {
    /// The daemon answered with an error (API.md "Errors", or a JSON-RPC protocol error).
    Rpc(RpcError),
    /// No daemon runs where the client looked (no `daemon.json`, or nothing listens).
    DaemonNotRunning(String),
    /// The connection broke, or the answer was not JSON-RPC.
    Transport(String),
}

/// The error object of a daemon's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    /// `data` as sent (null when absent).
    pub data: Value,
}

/// What kind of failure, one per contract code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 4000: params missing, wrong type, out of range, too large ([`Error::field`]).
    Validation,
    /// 4001: unknown job id.
    NotFound,
    /// 4002: not allowed from the job's state ([`Error::state`]).
    Conflict,
    /// 4003: rate limit or back-pressure ([`Error::retry_after_ms`]).
    Throttled,
    /// 4010: TCP call without the right token.
    Unauthorized,
    /// 5000, 5001, 5002: the daemon's or the system's failure.
    Server,
    /// -32700, -32600, -32601, -32602: JSON-RPC's own (-32601: the daemon lacks the method).
    Protocol,
    /// A code outside the contract.
    Other,
    DaemonNotRunning,
    Transport,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Rpc(error) => match error.code {
                codes::VALIDATION_ERROR => ErrorKind::Validation,
                codes::NOT_FOUND => ErrorKind::NotFound,
                codes::CONFLICT => ErrorKind::Conflict,
                codes::THROTTLED => ErrorKind::Throttled,
                codes::UNAUTHORIZED => ErrorKind::Unauthorized,
                5000..=5999 => ErrorKind::Server,
                -32768..=-32000 => ErrorKind::Protocol,
                _ => ErrorKind::Other,
            },
            Error::DaemonNotRunning(_) => ErrorKind::DaemonNotRunning,
            Error::Transport(_) => ErrorKind::Transport,
        }
    }

    /// The JSON-RPC code, when the daemon answered.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Rpc(error) => Some(error.code),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Error::Rpc(error) => error.message.clone(),
            other => other.to_string(),
        }
    }

    /// `data`, typed (absent fields are `None`).
    pub fn data(&self) -> Option<ErrorData> {
        match self {
            Error::Rpc(error) => serde_json::from_value(error.data.clone()).ok(),
            _ => None,
        }
    }

    /// `data.kind`, e.g. `unknown_job_type`, `out_of_range`.
    pub fn data_kind(&self) -> Option<String> {
        self.data().map(|data| data.kind)
    }

    /// `data.field`: the failing param as a dotted path.
    pub fn field(&self) -> Option<String> {
        self.data().and_then(|data| data.field)
    }

    /// `data.index`: the failing job of a batch.
    pub fn index(&self) -> Option<u64> {
        self.data().and_then(|data| data.index)
    }

    /// `data.state` of a conflict, as the wire names it.
    pub fn state(&self) -> Option<crate::types::JobState> {
        self.data().and_then(|data| data.state)
    }

    /// `data.retry_after_ms` of a throttled call.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.data().and_then(|data| data.retry_after_ms)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rpc(error) => {
                write!(f, "error {}: {}", error.code, error.message)?;
                match error.data.get("field").and_then(Value::as_str) {
                    Some(field) if !field.is_empty() => write!(f, " (field {field})"),
                    _ => Ok(()),
                }
            }
            Error::DaemonNotRunning(detail) => {
                write!(f, "no semantica daemon is running ({detail}); start one with `semantica serve`")
            }
            Error::Transport(detail) => write!(f, "talking to the semantica daemon failed: {detail}"),
        }
    }
}

impl std::error::Error for Error {}
