//! The wire format of API.md, converted by hand at the edge: JSON params into core's
//! requests (only JSON types are judged here; every other rule is core's), and core's
//! jobs and errors into JSON.

use std::collections::BTreeMap;

use semantica_client::types;
use semantica_core::{
    BackoffRequest, Conditions, EnqueueRequest, ExecRequest, Job, JobId, JobState, Rejection, ScheduleRequest,
    ValidationError, ValidationKind,
};
use serde_json::{json, Map, Value};

/// The contract's error codes, defined once with the wire types.
pub use semantica_client::types::codes::*;

/// A JSON-RPC error as API.md shapes it: `{code, message, data: {kind, details, field?, …}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct WireError {
    pub code: i32,
    pub message: String,
    pub data: Value,
}

impl WireError {
    pub fn new(code: i32, kind: &str, message: impl Into<String>) -> WireError {
        let message = message.into();
        WireError { code, data: json!({ "kind": kind, "details": message }), message }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> WireError {
        self.data.as_object_mut().expect("data is an object").insert(key.to_owned(), value.into());
        self
    }

    pub fn validation(error: &ValidationError) -> WireError {
        let mut wire =
            WireError::new(VALIDATION_ERROR, error.kind.as_str(), error.to_string()).with("field", error.field.clone());
        if let Some(index) = error.index {
            wire = wire.with("index", index);
        }
        wire
    }

    pub fn rejection(rejection: &Rejection) -> WireError {
        match rejection {
            Rejection::Validation(error) => WireError::validation(error),
            Rejection::NotFound(id) => {
                WireError::new(NOT_FOUND, "not_found", format!("no job {id}")).with("job_id", id.to_string())
            }
            Rejection::Conflict { job_id, state } => {
                WireError::new(CONFLICT, "conflict", format!("job {job_id} is {state}")).with("state", state.as_str())
            }
        }
    }
}

fn wrong_type(field: &str, expected: &str) -> ValidationError {
    ValidationError::new(field, ValidationKind::InvalidFormat, format!("must be {expected}"))
}

/// The fields of an object, refusing any not in `known` (a typo must not pass silently).
fn object<'a>(field: &str, value: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>, ValidationError> {
    let map = value.as_object().ok_or_else(|| wrong_type(field, "an object"))?;
    if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
        let path = if field.is_empty() { unknown.clone() } else { format!("{field}.{unknown}") };
        return Err(ValidationError::new(path, ValidationKind::InvalidFormat, "is not a known field"));
    }
    Ok(map)
}

fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A present, non-null field.
fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|value| !value.is_null())
}

fn string(map: &Map<String, Value>, parent: &str, key: &str) -> Result<Option<String>, ValidationError> {
    match field(map, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(wrong_type(&path(parent, key), "a string")),
    }
}

fn integer(map: &Map<String, Value>, parent: &str, key: &str) -> Result<Option<i64>, ValidationError> {
    match field(map, key) {
        None => Ok(None),
        Some(Value::Number(number)) => match (number.as_i64(), number.as_u64()) {
            (Some(value), _) => Ok(Some(value)),
            // Above i64: out of every range core accepts.
            (None, Some(_)) => Err(ValidationError::new(path(parent, key), ValidationKind::OutOfRange, "is too large")),
            (None, None) => Err(wrong_type(&path(parent, key), "an integer")),
        },
        Some(_) => Err(wrong_type(&path(parent, key), "an integer")),
    }
}

fn number(map: &Map<String, Value>, parent: &str, key: &str) -> Result<Option<f64>, ValidationError> {
    match field(map, key) {
        None => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(_) => Err(wrong_type(&path(parent, key), "a number")),
    }
}

fn boolean(map: &Map<String, Value>, parent: &str, key: &str) -> Result<bool, ValidationError> {
    match field(map, key) {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(wrong_type(&path(parent, key), "true or false")),
    }
}

const ENQUEUE_FIELDS: [&str; 19] = [
    "job_type",
    "queue",
    "subject_key",
    "generation",
    "payload",
    "priority",
    "exec",
    "max_attempts",
    "backoff",
    "timeout_ms",
    "ttl_ms",
    "deadline",
    "schedule",
    "conditions",
    "parent_job_id",
    "tag",
    "chain_group_id",
    "trace_id",
    "traceparent",
];

/// `dev.enqueue.v1` params into core's request.
pub fn enqueue_request(params: &Value) -> Result<EnqueueRequest, ValidationError> {
    let map = object("", params, &ENQUEUE_FIELDS)?;
    let exec = match field(map, "exec") {
        None => None,
        Some(value) => {
            let exec = object("exec", value, &["command", "args", "env", "cwd"])?;
            let args = match field(exec, "args") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| wrong_type("exec.args", "an array of strings"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(wrong_type("exec.args", "an array of strings")),
            };
            let env = match field(exec, "env") {
                None => BTreeMap::new(),
                Some(Value::Object(entries)) => entries
                    .iter()
                    .map(|(key, value)| {
                        value
                            .as_str()
                            .map(|v| (key.clone(), v.to_owned()))
                            .ok_or_else(|| wrong_type("exec.env", "an object of strings"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(wrong_type("exec.env", "an object of strings")),
            };
            Some(ExecRequest {
                command: string(exec, "exec", "command")?,
                args,
                env,
                cwd: string(exec, "exec", "cwd")?,
            })
        }
    };
    let backoff = match field(map, "backoff") {
        None => None,
        Some(value) => {
            let backoff = object("backoff", value, &["base_ms", "factor", "max_ms", "jitter"])?;
            Some(BackoffRequest {
                base_ms: integer(backoff, "backoff", "base_ms")?,
                factor: number(backoff, "backoff", "factor")?,
                max_ms: integer(backoff, "backoff", "max_ms")?,
                jitter: number(backoff, "backoff", "jitter")?,
            })
        }
    };
    let schedule = match field(map, "schedule") {
        None => None,
        Some(value) => {
            let schedule = object("schedule", value, &["at", "delay_ms"])?;
            Some(ScheduleRequest {
                at_ms: integer(schedule, "schedule", "at")?,
                delay_ms: integer(schedule, "schedule", "delay_ms")?,
            })
        }
    };
    let conditions = match field(map, "conditions") {
        None => None,
        Some(value) => {
            let conditions = object("conditions", value, &["wait_for_idle", "require_charging", "wait_for_event"])?;
            Some(Conditions {
                wait_for_idle: boolean(conditions, "conditions", "wait_for_idle")?,
                require_charging: boolean(conditions, "conditions", "require_charging")?,
                wait_for_event: string(conditions, "conditions", "wait_for_event")?,
            })
        }
    };
    Ok(EnqueueRequest {
        job_type: string(map, "", "job_type")?,
        queue: string(map, "", "queue")?,
        subject_key: string(map, "", "subject_key")?,
        generation: integer(map, "", "generation")?,
        payload_json: field(map, "payload").map(Value::to_string),
        priority: integer(map, "", "priority")?,
        exec,
        max_attempts: integer(map, "", "max_attempts")?,
        backoff,
        timeout_ms: integer(map, "", "timeout_ms")?,
        ttl_ms: integer(map, "", "ttl_ms")?,
        deadline_ms: integer(map, "", "deadline")?,
        schedule,
        conditions,
        parent_job_id: string(map, "", "parent_job_id")?,
        tag: string(map, "", "tag")?,
        chain_group_id: string(map, "", "chain_group_id")?,
        trace_id: trace_id(map)?,
    })
}

/// The job's trace id: `traceparent`'s when given (API.md "Trace context"), else
/// `trace_id` as given. Both given must name the same trace.
fn trace_id(map: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    let given = string(map, "", "trace_id")?;
    let Some(traceparent) = string(map, "", "traceparent")? else { return Ok(given) };
    let Some((trace_id, _parent_span_id)) = semantica_adapters::trace::parse_traceparent(&traceparent) else {
        return Err(ValidationError::new(
            "traceparent",
            ValidationKind::InvalidFormat,
            "must be W3C Trace Context: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, ids not all zero",
        ));
    };
    if given.as_deref().is_some_and(|given| given != trace_id) {
        return Err(ValidationError::new(
            "trace_id",
            ValidationKind::InvalidFormat,
            "differs from traceparent's trace id",
        ));
    }
    Ok(Some(trace_id.to_owned()))
}

/// A request back in the form [`enqueue_request`] reads (a recurring job's `job` in
/// `dev.recurring.list.v1`): only the fields that were given. Stored requests were
/// validated, so their numbers are in range; one that is not shows as 0.
pub fn enqueue_params(request: &EnqueueRequest) -> types::EnqueueParams {
    fn unsigned<T: TryFrom<i64> + Default>(value: i64) -> T {
        T::try_from(value).unwrap_or_default()
    }
    types::EnqueueParams {
        job_type: request.job_type.clone().unwrap_or_default(),
        queue: request.queue.clone().unwrap_or_default(),
        subject_key: request.subject_key.clone().unwrap_or_default(),
        generation: request.generation.map(unsigned),
        payload: request.payload_json.as_deref().map(parsed_json),
        priority: request.priority.map(unsigned),
        exec: request.exec.as_ref().map(|e| types::Exec {
            command: e.command.clone().unwrap_or_default(),
            args: e.args.clone(),
            env: e.env.clone(),
            cwd: e.cwd.clone(),
        }),
        max_attempts: request.max_attempts.map(unsigned),
        backoff: request.backoff.map(|b| types::Backoff {
            base_ms: b.base_ms.map(unsigned),
            factor: b.factor,
            max_ms: b.max_ms.map(unsigned),
            jitter: b.jitter,
        }),
        timeout_ms: request.timeout_ms.map(unsigned),
        ttl_ms: request.ttl_ms.map(unsigned),
        deadline: request.deadline_ms.map(unsigned),
        schedule: request
            .schedule
            .map(|s| types::Schedule { at: s.at_ms.map(unsigned), delay_ms: s.delay_ms.map(unsigned) }),
        conditions: request.conditions.as_ref().map(|c| types::Conditions {
            wait_for_idle: Some(c.wait_for_idle),
            require_charging: Some(c.require_charging),
            wait_for_event: c.wait_for_event.clone(),
        }),
        parent_job_id: request.parent_job_id.clone(),
        tag: request.tag.clone(),
        chain_group_id: request.chain_group_id.clone(),
        trace_id: request.trace_id.clone(),
        // Stored as the trace id it named.
        traceparent: None,
    }
}

/// A job id param.
pub fn job_id(map: &Map<String, Value>, key: &str) -> Result<Option<JobId>, ValidationError> {
    match string(map, "", key)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|error: semantica_core::id::JobIdParseError| {
            ValidationError::new(key, ValidationKind::InvalidFormat, error.to_string())
        }),
    }
}

fn parsed_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A job as clients see it; its times are wall-clock epoch ms (engine time plus
/// `offset_ms`).
pub fn job_view(job: &Job, offset_ms: i64) -> types::JobView {
    let wall = |engine_ms: u64| semantica_adapters::engine_to_wall_ms(engine_ms, offset_ms);
    types::JobView {
        id: job.id.to_string(),
        queue: job.queue.clone(),
        job_type: job.job_type.clone(),
        subject_key: job.subject_key.clone(),
        generation: job.generation,
        state: job_state(job.state),
        priority: job.priority,
        payload: parsed_json(&job.payload_json),
        execution_mode: if job.exec.is_some() {
            types::ExecutionMode::Subprocess
        } else {
            types::ExecutionMode::InProcess
        },
        pid: job.pid,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        created_at: wall(job.created_at_ms),
        scheduled_at: wall(job.due_at_ms),
        started_at: job.started_at_ms.map(wall),
        finished_at: job.finished_at_ms.map(wall),
        exit_code: job.exit_code,
        error: job
            .error
            .as_ref()
            .map(|error| types::JobError { kind: error.kind.as_str().to_owned(), message: error.message.clone() }),
        result_summary: job.result_summary_json.as_deref().map(parsed_json),
        artifacts: job.artifacts.iter().map(|a| types::Artifact { name: a.name.clone(), bytes: a.bytes }).collect(),
        tag: job.tag.clone(),
        chain_group_id: job.chain_group_id.clone(),
        parent_job_id: job.parent_job_id.map(|id| id.to_string()),
        trace_id: job.trace_id.clone(),
        retry_of: job.retry_of.map(|id| id.to_string()),
        node: job.node.clone(),
    }
}

/// Core's state as the wire names it.
pub fn job_state(state: JobState) -> types::JobState {
    match state {
        JobState::Queued => types::JobState::Queued,
        JobState::Scheduled => types::JobState::Scheduled,
        JobState::Running => types::JobState::Running,
        JobState::Done => types::JobState::Done,
        JobState::Failed => types::JobState::Failed,
        JobState::Cancelled => types::JobState::Cancelled,
        JobState::Superseded => types::JobState::Superseded,
        JobState::SkippedTtl => types::JobState::SkippedTtl,
        JobState::SkippedDeadline => types::JobState::SkippedDeadline,
    }
}

/// An answer as JSON: every answer is built from a wire type of `semantica_client::types`,
/// so it cannot drift from the schema `rpc.discover` publishes.
pub fn to_json<T: serde::Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).expect("wire types serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: Value, field: &str, kind: ValidationKind) {
        match enqueue_request(&params) {
            Err(error) => assert_eq!((error.field.as_str(), error.kind), (field, kind), "{error}"),
            Ok(request) => panic!("accepted {request:?}"),
        }
    }

    /// What `dev.recurring.list.v1` shows of a stored request reads back as that request.
    #[test]
    fn a_request_shown_as_json_reads_back_the_same() {
        let params = json!({
            "job_type": "sh", "queue": "q", "subject_key": "s", "payload": {"a": [1, null]}, "priority": 4,
            "exec": {"command": "sh", "args": ["-c", "true"], "env": {"A": "b"}, "cwd": "/tmp"},
            "max_attempts": 3, "backoff": {"base_ms": 10, "factor": 1.5, "max_ms": 100, "jitter": 0.0},
            "timeout_ms": 5, "ttl_ms": 6, "deadline": 7,
            "conditions": {"wait_for_idle": true, "require_charging": false, "wait_for_event": "e"},
            "tag": "t", "chain_group_id": "g", "trace_id": "x"
        });
        let request = enqueue_request(&params).unwrap();
        let shown = to_json(&enqueue_params(&request));
        assert_eq!(enqueue_request(&shown).unwrap(), request, "{shown}");
        assert_eq!(shown["payload"], json!({"a": [1, null]}));
    }

    /// The published param schemas come from the typed params of `semantica_client`, the
    /// answers of this validator from its own reading: what one reads, the other reads the same.
    #[test]
    fn typed_params_and_the_validator_agree() {
        let samples = [
            json!({"job_type": "noop", "queue": "q", "subject_key": "s"}),
            json!({
                "job_type": "sh", "queue": "q", "subject_key": "s", "generation": 3, "payload": {"a": [1, null]},
                "priority": -4, "exec": {"command": "sh", "args": ["-c", "true"], "env": {"A": "b"}, "cwd": "/tmp"},
                "max_attempts": 3, "backoff": {"base_ms": 10, "factor": 1.5, "max_ms": 100, "jitter": 0.5},
                "timeout_ms": 5, "ttl_ms": 6, "deadline": 7, "schedule": {"at": 8},
                "conditions": {"wait_for_idle": true, "require_charging": false, "wait_for_event": "e"},
                "parent_job_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "tag": "t", "chain_group_id": "g",
                "trace_id": "x"
            }),
            json!({"job_type": "noop", "queue": "q", "subject_key": "s", "exec": {"command": "x"},
                   "backoff": {"factor": null}, "schedule": {"delay_ms": 1}, "conditions": {}, "tag": null}),
        ];
        for sample in samples {
            let typed: types::EnqueueParams = serde_json::from_value(sample.clone()).expect("the typed params read it");
            let from_typed = enqueue_request(&to_json(&typed)).expect("the validator reads what the types write");
            assert_eq!(from_typed, enqueue_request(&sample).unwrap(), "{sample}");
        }
        let unknown = json!({"job_type": "noop", "queue": "q", "subject_key": "s", "colour": "red"});
        assert!(serde_json::from_value::<types::EnqueueParams>(unknown.clone()).is_err());
        assert!(enqueue_request(&unknown).is_err());
    }

    #[test]
    fn every_field_reaches_core_as_given() {
        let params = json!({
            "job_type": "index_file", "queue": "default", "subject_key": "src/lib.rs", "generation": 7,
            "payload": {"path": "src/lib.rs", "n": [1, 2]}, "priority": -3,
            "exec": {"command": "cargo", "args": ["test"], "env": {"RUST_LOG": "info"}, "cwd": "/tmp"},
            "max_attempts": 3, "backoff": {"base_ms": 10, "factor": 1.5, "max_ms": 100, "jitter": 0.2},
            "timeout_ms": 1000, "ttl_ms": 2000, "deadline": 3000, "schedule": {"delay_ms": 5},
            "conditions": {"wait_for_idle": true, "require_charging": false, "wait_for_event": "saved"},
            "parent_job_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "tag": "t", "chain_group_id": "g", "trace_id": "tr"
        });
        let request = enqueue_request(&params).unwrap();
        assert_eq!(request.generation, Some(7));
        assert_eq!(request.payload_json.as_deref(), Some(r#"{"n":[1,2],"path":"src/lib.rs"}"#));
        assert_eq!(request.exec.as_ref().unwrap().args, ["test"]);
        assert_eq!(request.backoff.unwrap().factor, Some(1.5));
        assert_eq!(request.schedule.unwrap().delay_ms, Some(5));
        assert_eq!(request.deadline_ms, Some(3000));
        assert!(request.conditions.as_ref().unwrap().wait_for_idle);
        assert_eq!(request.trace_id.as_deref(), Some("tr"));
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_field() {
        check(json!([1, 2]), "", ValidationKind::InvalidFormat);
        check(json!({"job_type": 5}), "job_type", ValidationKind::InvalidFormat);
        check(json!({"generation": "1"}), "generation", ValidationKind::InvalidFormat);
        check(json!({"generation": 1.5}), "generation", ValidationKind::InvalidFormat);
        check(json!({"generation": u64::MAX}), "generation", ValidationKind::OutOfRange);
        check(json!({"exec": {"command": "x", "args": "y"}}), "exec.args", ValidationKind::InvalidFormat);
        check(json!({"exec": {"command": "x", "env": {"A": 1}}}), "exec.env", ValidationKind::InvalidFormat);
        check(json!({"backoff": {"factor": "2"}}), "backoff.factor", ValidationKind::InvalidFormat);
        check(json!({"conditions": {"wait_for_idle": 1}}), "conditions.wait_for_idle", ValidationKind::InvalidFormat);
        check(json!({"colour": "red"}), "colour", ValidationKind::InvalidFormat);
        check(json!({"schedule": {"at": 1, "every": 2}}), "schedule.every", ValidationKind::InvalidFormat);
    }

    #[test]
    fn null_means_absent() {
        let request = enqueue_request(&json!({"job_type": "noop", "generation": null, "payload": null})).unwrap();
        assert_eq!((request.generation, request.payload_json), (None, None));
    }

    #[test]
    fn rejections_map_to_the_contract_codes() {
        let id = JobId::from_u128(1);
        let not_found = WireError::rejection(&Rejection::NotFound(id));
        assert_eq!((not_found.code, not_found.data["kind"].as_str()), (NOT_FOUND, Some("not_found")));
        let conflict = WireError::rejection(&Rejection::Conflict { job_id: id, state: semantica_core::JobState::Done });
        assert_eq!((conflict.code, conflict.data["state"].as_str()), (CONFLICT, Some("DONE")));
        let invalid = ValidationError::new("backoff.factor", ValidationKind::OutOfRange, "bad").at_index(3);
        let wire = WireError::validation(&invalid);
        assert_eq!(wire.code, VALIDATION_ERROR);
        assert_eq!(
            wire.data,
            json!({"kind": "out_of_range", "details": "jobs[3].backoff.factor: bad", "field": "backoff.factor", "index": 3})
        );
    }
}
