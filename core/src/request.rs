//! The enqueue request as the edge hands it over, and its validation.
//!
//! The edge (JSON-RPC, CLI) only checks JSON types; every rule about lengths, character
//! sets, ranges and sizes lives here, so that a [`ValidationError`] names the field and the
//! kind and the edge maps it to code 4000 without judging anything itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::id::JobId;
use crate::job::{Backoff, Conditions, ExecSpec};
use crate::limits;

/// One `dev.enqueue.v1` call, fields as wide as the wire can carry so that out-of-range
/// values reach validation instead of failing a conversion at the edge.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EnqueueRequest {
    pub job_type: Option<String>,
    pub queue: Option<String>,
    pub subject_key: Option<String>,
    pub generation: Option<i64>,
    /// The payload serialized as JSON text by the edge.
    pub payload_json: Option<String>,
    pub priority: Option<i64>,
    pub exec: Option<ExecRequest>,
    pub max_attempts: Option<i64>,
    pub backoff: Option<BackoffRequest>,
    pub timeout_ms: Option<i64>,
    pub ttl_ms: Option<i64>,
    /// Wall-clock epoch ms, as every absolute time a client gives.
    pub deadline_ms: Option<i64>,
    pub schedule: Option<ScheduleRequest>,
    pub conditions: Option<Conditions>,
    pub parent_job_id: Option<String>,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
    pub trace_id: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ExecRequest {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct BackoffRequest {
    pub base_ms: Option<i64>,
    pub factor: Option<f64>,
    pub max_ms: Option<i64>,
    pub jitter: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScheduleRequest {
    /// Wall-clock epoch ms.
    pub at_ms: Option<i64>,
    pub delay_ms: Option<i64>,
}

/// When a job's first attempt becomes due.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Schedule {
    Now,
    /// Wall-clock epoch ms: the engine places it on its own timeline, and moves it when
    /// the wall clock is stepped, until it has come.
    At {
        at_ms: u64,
    },
    Delay {
        delay_ms: u64,
    },
}

/// An enqueue request that passed validation: every field typed and within its limits.
#[derive(Clone, PartialEq, Debug)]
pub struct ValidEnqueue {
    pub job_type: String,
    pub queue: String,
    pub subject_key: String,
    pub generation: Option<u64>,
    pub payload_json: String,
    pub priority: i32,
    pub exec: Option<ExecSpec>,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub timeout_ms: Option<u64>,
    pub ttl_ms: Option<u64>,
    /// Wall-clock epoch ms.
    pub deadline_ms: Option<u64>,
    pub schedule: Schedule,
    pub conditions: Conditions,
    pub parent_job_id: Option<JobId>,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
    pub trace_id: Option<String>,
    /// The ended job this one retries (`dev.retry.v1`); never from a client's enqueue.
    pub retry_of: Option<JobId>,
}

/// What is wrong with a field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValidationKind {
    Missing,
    Empty,
    TooLong,
    TooLarge,
    InvalidCharacters,
    ControlCharacter,
    OutOfRange,
    InvalidFormat,
    Conflicting,
    UnknownJobType,
    UnknownParent,
    TooMany,
    UnknownTimeZone,
}

impl ValidationKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ValidationKind::Missing => "missing",
            ValidationKind::Empty => "empty",
            ValidationKind::TooLong => "too_long",
            ValidationKind::TooLarge => "too_large",
            ValidationKind::InvalidCharacters => "invalid_characters",
            ValidationKind::ControlCharacter => "control_character",
            ValidationKind::OutOfRange => "out_of_range",
            ValidationKind::InvalidFormat => "invalid_format",
            ValidationKind::Conflicting => "conflicting",
            ValidationKind::UnknownJobType => "unknown_job_type",
            ValidationKind::UnknownParent => "unknown_parent",
            ValidationKind::TooMany => "too_many",
            ValidationKind::UnknownTimeZone => "unknown_time_zone",
        }
    }
}

/// A request refused before anything was written. Maps to code 4000.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidationError {
    /// Dotted path of the field (`exec.command`, `backoff.factor`).
    pub field: String,
    pub kind: ValidationKind,
    pub message: String,
    /// The failing job's index within a batch.
    pub index: Option<usize>,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, kind: ValidationKind, message: impl Into<String>) -> ValidationError {
        ValidationError { field: field.into(), kind, message: message.into(), index: None }
    }

    pub fn at_index(mut self, index: usize) -> ValidationError {
        self.index = Some(index);
        self
    }

    /// The same error for a field nested under `parent` (`job.queue`).
    pub fn within(mut self, parent: &str) -> ValidationError {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.index {
            write!(f, "jobs[{index}].")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

type Check<T> = Result<T, ValidationError>;

fn fail<T>(field: &str, kind: ValidationKind, message: impl Into<String>) -> Check<T> {
    Err(ValidationError::new(field, kind, message))
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Check<&'a str> {
    match value {
        Some(value) => Ok(value),
        None => fail(field, ValidationKind::Missing, "is required"),
    }
}

/// 1..=max_chars characters, each accepted by `allowed`.
fn name(field: &str, value: &str, max_chars: usize, allowed: fn(char) -> bool, set: &str) -> Check<String> {
    if value.is_empty() {
        return fail(field, ValidationKind::Empty, "must not be empty");
    }
    if value.chars().count() > max_chars {
        return fail(field, ValidationKind::TooLong, format!("must be at most {max_chars} characters"));
    }
    if !value.chars().all(allowed) {
        return fail(field, ValidationKind::InvalidCharacters, format!("may only contain {set}"));
    }
    Ok(value.to_owned())
}

fn no_control(field: &str, value: &str) -> Check<()> {
    if value.chars().any(char::is_control) {
        return fail(field, ValidationKind::ControlCharacter, "must not contain control characters");
    }
    Ok(())
}

fn no_nul(field: &str, value: &str) -> Check<()> {
    if value.contains('\0') {
        return fail(field, ValidationKind::InvalidCharacters, "must not contain NUL");
    }
    Ok(())
}

fn short_text(field: &str, value: &Option<String>, max_chars: usize) -> Check<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > max_chars {
        return fail(field, ValidationKind::TooLong, format!("must be at most {max_chars} characters"));
    }
    Ok(Some(value.clone()))
}

fn range_i64(field: &str, value: i64, min: i64, max: i64) -> Check<i64> {
    if value < min || value > max {
        return fail(field, ValidationKind::OutOfRange, format!("must be between {min} and {max}"));
    }
    Ok(value)
}

/// Non-negative integer within `min..=max`, as u64.
fn range_u64(field: &str, value: i64, min: i64, max: i64) -> Check<u64> {
    let value = range_i64(field, value, min, max)?;
    Ok(u64::try_from(value).expect("range checked to be non-negative"))
}

fn range_f64(field: &str, value: f64, min: f64, max: f64) -> Check<f64> {
    if !value.is_finite() || value < min || value > max {
        return fail(field, ValidationKind::OutOfRange, format!("must be a number between {min} and {max}"));
    }
    Ok(value)
}

fn is_job_type_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn is_queue_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

fn exec_spec(exec: &ExecRequest) -> Check<ExecSpec> {
    let command = required("exec.command", &exec.command)?;
    if command.is_empty() {
        return fail("exec.command", ValidationKind::Empty, "must not be empty");
    }
    if command.len() > limits::EXEC_TEXT_BYTES_MAX {
        return fail(
            "exec.command",
            ValidationKind::TooLong,
            format!("must be at most {} bytes", limits::EXEC_TEXT_BYTES_MAX),
        );
    }
    no_nul("exec.command", command)?;
    if exec.args.len() > limits::EXEC_ARGS_MAX {
        return fail("exec.args", ValidationKind::TooMany, format!("at most {} arguments", limits::EXEC_ARGS_MAX));
    }
    for arg in &exec.args {
        if arg.len() > limits::EXEC_TEXT_BYTES_MAX {
            return fail(
                "exec.args",
                ValidationKind::TooLong,
                format!("each argument at most {} bytes", limits::EXEC_TEXT_BYTES_MAX),
            );
        }
        no_nul("exec.args", arg)?;
    }
    if exec.env.len() > limits::EXEC_ENV_MAX {
        return fail("exec.env", ValidationKind::TooMany, format!("at most {} variables", limits::EXEC_ENV_MAX));
    }
    for (key, value) in &exec.env {
        let field = "exec.env";
        if key.is_empty() {
            return fail(field, ValidationKind::Empty, "variable names must not be empty");
        }
        if key.contains('=') {
            return fail(field, ValidationKind::InvalidCharacters, "variable names must not contain '='");
        }
        if key.len() + value.len() > limits::EXEC_TEXT_BYTES_MAX {
            return fail(
                field,
                ValidationKind::TooLong,
                format!("each variable at most {} bytes", limits::EXEC_TEXT_BYTES_MAX),
            );
        }
        no_nul(field, key)?;
        no_nul(field, value)?;
    }
    if let Some(cwd) = &exec.cwd {
        if cwd.is_empty() {
            return fail("exec.cwd", ValidationKind::Empty, "must not be empty when given");
        }
        if cwd.len() > limits::EXEC_TEXT_BYTES_MAX {
            return fail(
                "exec.cwd",
                ValidationKind::TooLong,
                format!("must be at most {} bytes", limits::EXEC_TEXT_BYTES_MAX),
            );
        }
        no_nul("exec.cwd", cwd)?;
    }
    Ok(ExecSpec { command: command.to_owned(), args: exec.args.clone(), env: exec.env.clone(), cwd: exec.cwd.clone() })
}

fn backoff(request: &BackoffRequest) -> Check<Backoff> {
    let default = Backoff::DEFAULT;
    let base_ms = match request.base_ms {
        Some(v) => range_u64("backoff.base_ms", v, 0, limits::BACKOFF_MS_MAX as i64)?,
        None => default.base_ms,
    };
    let factor = match request.factor {
        Some(v) => range_f64("backoff.factor", v, 1.0, limits::BACKOFF_FACTOR_MAX)?,
        None => default.factor,
    };
    let max_ms = match request.max_ms {
        Some(v) => range_u64("backoff.max_ms", v, 0, limits::BACKOFF_MS_MAX as i64)?,
        None => default.max_ms,
    };
    let jitter = match request.jitter {
        Some(v) => range_f64("backoff.jitter", v, 0.0, 1.0)?,
        None => default.jitter,
    };
    Ok(Backoff { base_ms, factor, max_ms, jitter })
}

fn schedule(request: &Option<ScheduleRequest>) -> Check<Schedule> {
    match request {
        None => Ok(Schedule::Now),
        Some(ScheduleRequest { at_ms: Some(_), delay_ms: Some(_) }) => {
            fail("schedule", ValidationKind::Conflicting, "give either at or delay_ms, not both")
        }
        Some(ScheduleRequest { at_ms: Some(at), delay_ms: None }) => {
            Ok(Schedule::At { at_ms: range_u64("schedule.at", *at, 0, limits::TIME_MS_MAX as i64)? })
        }
        Some(ScheduleRequest { at_ms: None, delay_ms: Some(delay) }) => {
            Ok(Schedule::Delay { delay_ms: range_u64("schedule.delay_ms", *delay, 0, limits::DURATION_MS_MAX as i64)? })
        }
        Some(ScheduleRequest { at_ms: None, delay_ms: None }) => {
            fail("schedule", ValidationKind::Missing, "needs at or delay_ms")
        }
    }
}

fn conditions(request: &Option<Conditions>) -> Check<Conditions> {
    let Some(conditions) = request else { return Ok(Conditions::default()) };
    if let Some(event) = &conditions.wait_for_event {
        let field = "conditions.wait_for_event";
        if event.is_empty() {
            return fail(field, ValidationKind::Empty, "must not be empty");
        }
        if event.chars().count() > limits::EVENT_NAME_CHARS_MAX {
            return fail(
                field,
                ValidationKind::TooLong,
                format!("must be at most {} characters", limits::EVENT_NAME_CHARS_MAX),
            );
        }
        no_control(field, event)?;
    }
    Ok(conditions.clone())
}

impl EnqueueRequest {
    /// Checks every rule of `dev.enqueue.v1`. `known_job_types` are the in-process handlers
    /// that exist; a job without `exec` must name one of them.
    pub fn validate(&self, known_job_types: &BTreeSet<String>) -> Result<ValidEnqueue, ValidationError> {
        let job_type = name(
            "job_type",
            required("job_type", &self.job_type)?,
            limits::NAME_CHARS_MAX,
            is_job_type_char,
            "A-Z a-z 0-9 _ . : -",
        )?;
        let queue =
            name("queue", required("queue", &self.queue)?, limits::NAME_CHARS_MAX, is_queue_char, "a-z 0-9 _ . -")?;
        let subject_key = required("subject_key", &self.subject_key)?;
        if subject_key.is_empty() {
            return fail("subject_key", ValidationKind::Empty, "must not be empty");
        }
        if subject_key.len() > limits::SUBJECT_KEY_BYTES_MAX {
            return fail(
                "subject_key",
                ValidationKind::TooLong,
                format!("must be at most {} bytes", limits::SUBJECT_KEY_BYTES_MAX),
            );
        }
        no_control("subject_key", subject_key)?;
        let generation = match self.generation {
            Some(g) => Some(range_u64("generation", g, 0, limits::GENERATION_MAX as i64)?),
            None => None,
        };
        let payload_json = self.payload_json.clone().unwrap_or_else(|| "null".to_owned());
        if payload_json.len() > limits::PAYLOAD_BYTES_MAX {
            return fail(
                "payload",
                ValidationKind::TooLarge,
                format!("must be at most {} bytes serialized", limits::PAYLOAD_BYTES_MAX),
            );
        }
        let priority = match self.priority {
            Some(p) => {
                i32::try_from(range_i64("priority", p, i32::MIN.into(), i32::MAX.into())?).expect("range checked")
            }
            None => 0,
        };
        let exec = match &self.exec {
            Some(exec) => Some(exec_spec(exec)?),
            None => {
                if !known_job_types.contains(&job_type) {
                    return fail(
                        "job_type",
                        ValidationKind::UnknownJobType,
                        format!("no in-process handler for job type {job_type:?}; give exec to run a subprocess"),
                    );
                }
                None
            }
        };
        let max_attempts = match self.max_attempts {
            Some(n) => {
                u32::try_from(range_i64("max_attempts", n, 1, limits::MAX_ATTEMPTS_MAX.into())?).expect("range checked")
            }
            None => 1,
        };
        let backoff = match &self.backoff {
            Some(request) => backoff(request)?,
            None => Backoff::DEFAULT,
        };
        let positive = |field: &str, value: Option<i64>| -> Check<Option<u64>> {
            value.map(|v| range_u64(field, v, 1, limits::DURATION_MS_MAX as i64)).transpose()
        };
        let timeout_ms = positive("timeout_ms", self.timeout_ms)?;
        let ttl_ms = positive("ttl_ms", self.ttl_ms)?;
        let deadline_ms =
            self.deadline_ms.map(|d| range_u64("deadline", d, 0, limits::TIME_MS_MAX as i64)).transpose()?;
        let schedule = schedule(&self.schedule)?;
        let conditions = conditions(&self.conditions)?;
        let parent_job_id = match &self.parent_job_id {
            Some(text) => match text.parse::<JobId>() {
                Ok(id) => Some(id),
                Err(err) => return fail("parent_job_id", ValidationKind::InvalidFormat, err.to_string()),
            },
            None => None,
        };
        let tag = short_text("tag", &self.tag, limits::LABEL_CHARS_MAX)?;
        let chain_group_id = short_text("chain_group_id", &self.chain_group_id, limits::LABEL_CHARS_MAX)?;
        let trace_id = short_text("trace_id", &self.trace_id, limits::LABEL_CHARS_MAX)?;
        Ok(ValidEnqueue {
            job_type,
            queue,
            subject_key: subject_key.to_owned(),
            generation,
            payload_json,
            priority,
            exec,
            max_attempts,
            backoff,
            timeout_ms,
            ttl_ms,
            deadline_ms,
            schedule,
            conditions,
            parent_job_id,
            tag,
            chain_group_id,
            trace_id,
            retry_of: None,
        })
    }
}

/// A queue name as `dev.enqueue.v1` takes it: 1..=64 characters of `a-z0-9_.-`.
pub fn valid_queue(field: &str, queue: &str) -> Result<String, ValidationError> {
    name(field, queue, limits::NAME_CHARS_MAX, is_queue_char, "a-z 0-9 _ . -")
}

/// A recurring job's name: 1..=128 characters of `A-Za-z0-9_.:-`.
pub fn valid_recurring_name(field: &str, value: &str) -> Result<String, ValidationError> {
    name(field, value, limits::RECURRING_NAME_CHARS_MAX, is_job_type_char, "A-Z a-z 0-9 _ . : -")
}
