//! One example per validation rule of `dev.enqueue.v1`: each bad field is refused with a
//! typed error naming the field and the kind, and nothing is written.

mod harness;

use harness::{config, request, World};
use semantica_core::{
    BackoffRequest, Conditions, EnqueueRequest, ExecRequest, Input, Rejection, Reply, ScheduleRequest, ValidationKind,
};

/// Enqueues `request` and expects a refusal on `field` of `kind`, with an empty store.
fn check(request: EnqueueRequest, field: &str, kind: ValidationKind) {
    let mut world = World::new(config(), 1);
    match world.enqueue(request) {
        Reply::Rejected(Rejection::Validation(error)) => {
            assert_eq!((error.field.as_str(), error.kind), (field, kind), "{error}");
            assert!(!error.message.is_empty());
            assert_eq!(error.index, None);
        }
        other => panic!("expected {field}: {kind:?}, got {other:?}"),
    }
    assert!(world.store.is_empty(), "a refused enqueue wrote a job");
}

fn with(change: impl FnOnce(&mut EnqueueRequest)) -> EnqueueRequest {
    let mut request = request("src/main.rs");
    change(&mut request);
    request
}

fn exec() -> ExecRequest {
    ExecRequest { command: Some("cargo".into()), ..ExecRequest::default() }
}

#[test]
fn a_valid_request_is_accepted() {
    let mut world = World::new(config(), 1);
    let enqueued = world.enqueue_ok(with(|r| {
        r.job_type = Some("Index.File:v2-x_y".into());
        r.exec = Some(exec());
        r.queue = Some("build.fast-1_a".into());
        r.subject_key = Some("ü".repeat(256)); // 512 bytes
        r.priority = Some(i64::from(i32::MIN));
        r.max_attempts = Some(100);
        r.tag = Some("t".repeat(128));
    }));
    assert_eq!(enqueued.generation, 1);
}

#[test]
fn job_type_rules() {
    check(with(|r| r.job_type = None), "job_type", ValidationKind::Missing);
    check(with(|r| r.job_type = Some(String::new())), "job_type", ValidationKind::Empty);
    check(with(|r| r.job_type = Some("a".repeat(65))), "job_type", ValidationKind::TooLong);
    check(with(|r| r.job_type = Some("build/test".into())), "job_type", ValidationKind::InvalidCharacters);
    check(with(|r| r.job_type = Some("no_such_handler".into())), "job_type", ValidationKind::UnknownJobType);
}

#[test]
fn queue_rules() {
    check(with(|r| r.queue = None), "queue", ValidationKind::Missing);
    check(with(|r| r.queue = Some(String::new())), "queue", ValidationKind::Empty);
    check(with(|r| r.queue = Some("q".repeat(65))), "queue", ValidationKind::TooLong);
    check(with(|r| r.queue = Some("Build".into())), "queue", ValidationKind::InvalidCharacters);
    check(with(|r| r.queue = Some("a:b".into())), "queue", ValidationKind::InvalidCharacters);
}

#[test]
fn subject_key_rules() {
    check(with(|r| r.subject_key = None), "subject_key", ValidationKind::Missing);
    check(with(|r| r.subject_key = Some(String::new())), "subject_key", ValidationKind::Empty);
    check(with(|r| r.subject_key = Some("ü".repeat(256) + "x")), "subject_key", ValidationKind::TooLong);
    check(with(|r| r.subject_key = Some("a\nb".into())), "subject_key", ValidationKind::ControlCharacter);
    check(with(|r| r.subject_key = Some("a\0b".into())), "subject_key", ValidationKind::ControlCharacter);
}

#[test]
fn number_ranges() {
    check(with(|r| r.generation = Some(-1)), "generation", ValidationKind::OutOfRange);
    check(with(|r| r.priority = Some(i64::from(i32::MAX) + 1)), "priority", ValidationKind::OutOfRange);
    check(with(|r| r.priority = Some(i64::from(i32::MIN) - 1)), "priority", ValidationKind::OutOfRange);
    check(with(|r| r.max_attempts = Some(0)), "max_attempts", ValidationKind::OutOfRange);
    check(with(|r| r.max_attempts = Some(101)), "max_attempts", ValidationKind::OutOfRange);
    check(with(|r| r.timeout_ms = Some(0)), "timeout_ms", ValidationKind::OutOfRange);
    check(with(|r| r.ttl_ms = Some(-5)), "ttl_ms", ValidationKind::OutOfRange);
    check(with(|r| r.deadline_ms = Some(-1)), "deadline", ValidationKind::OutOfRange);
}

#[test]
fn payload_size_limit() {
    let limit = semantica_core::limits::PAYLOAD_BYTES_MAX;
    let fits = format!("\"{}\"", "x".repeat(limit - 2));
    let mut world = World::new(config(), 1);
    world.enqueue_ok(with(|r| r.payload_json = Some(fits)));
    let over = format!("\"{}\"", "x".repeat(limit - 1));
    check(with(|r| r.payload_json = Some(over)), "payload", ValidationKind::TooLarge);
}

#[test]
fn backoff_rules() {
    let backoff = |b: BackoffRequest| with(move |r| r.backoff = Some(b));
    check(
        backoff(BackoffRequest { base_ms: Some(-1), ..Default::default() }),
        "backoff.base_ms",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { factor: Some(0.5), ..Default::default() }),
        "backoff.factor",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { factor: Some(f64::NAN), ..Default::default() }),
        "backoff.factor",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { factor: Some(f64::INFINITY), ..Default::default() }),
        "backoff.factor",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { max_ms: Some(i64::MAX), ..Default::default() }),
        "backoff.max_ms",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { jitter: Some(1.5), ..Default::default() }),
        "backoff.jitter",
        ValidationKind::OutOfRange,
    );
    check(
        backoff(BackoffRequest { jitter: Some(-0.1), ..Default::default() }),
        "backoff.jitter",
        ValidationKind::OutOfRange,
    );
}

#[test]
fn schedule_rules() {
    let schedule = |s: ScheduleRequest| with(move |r| r.schedule = Some(s));
    check(schedule(ScheduleRequest { at_ms: Some(1), delay_ms: Some(1) }), "schedule", ValidationKind::Conflicting);
    check(schedule(ScheduleRequest::default()), "schedule", ValidationKind::Missing);
    check(schedule(ScheduleRequest { at_ms: Some(-1), delay_ms: None }), "schedule.at", ValidationKind::OutOfRange);
    check(
        schedule(ScheduleRequest { at_ms: None, delay_ms: Some(-1) }),
        "schedule.delay_ms",
        ValidationKind::OutOfRange,
    );
}

#[test]
fn exec_rules() {
    let run = |e: ExecRequest| with(move |r| r.exec = Some(e));
    check(run(ExecRequest::default()), "exec.command", ValidationKind::Missing);
    check(run(ExecRequest { command: Some(String::new()), ..exec() }), "exec.command", ValidationKind::Empty);
    check(
        run(ExecRequest { command: Some("a\0b".into()), ..exec() }),
        "exec.command",
        ValidationKind::InvalidCharacters,
    );
    check(run(ExecRequest { args: vec!["x\0".into()], ..exec() }), "exec.args", ValidationKind::InvalidCharacters);
    check(run(ExecRequest { args: vec![String::new(); 1025], ..exec() }), "exec.args", ValidationKind::TooMany);
    let env = |k: &str, v: &str| [(k.to_owned(), v.to_owned())].into_iter().collect();
    check(run(ExecRequest { env: env("A=B", "1"), ..exec() }), "exec.env", ValidationKind::InvalidCharacters);
    check(run(ExecRequest { env: env("", "1"), ..exec() }), "exec.env", ValidationKind::Empty);
    check(run(ExecRequest { cwd: Some(String::new()), ..exec() }), "exec.cwd", ValidationKind::Empty);
}

#[test]
fn label_and_reference_rules() {
    check(with(|r| r.tag = Some("t".repeat(129))), "tag", ValidationKind::TooLong);
    check(with(|r| r.chain_group_id = Some("g".repeat(129))), "chain_group_id", ValidationKind::TooLong);
    check(with(|r| r.trace_id = Some("t".repeat(129))), "trace_id", ValidationKind::TooLong);
    check(with(|r| r.parent_job_id = Some("not-a-uuid".into())), "parent_job_id", ValidationKind::InvalidFormat);
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned();
    check(with(|r| r.parent_job_id = Some(unknown)), "parent_job_id", ValidationKind::UnknownParent);
    let event = |name: &str| Conditions { wait_for_event: Some(name.into()), ..Conditions::default() };
    check(with(|r| r.conditions = Some(event(""))), "conditions.wait_for_event", ValidationKind::Empty);
    check(with(|r| r.conditions = Some(event(&"e".repeat(129)))), "conditions.wait_for_event", ValidationKind::TooLong);
    check(with(|r| r.conditions = Some(event("a\tb"))), "conditions.wait_for_event", ValidationKind::ControlCharacter);
}

#[test]
fn a_batch_is_refused_whole_with_the_failing_index() {
    let mut world = World::new(config(), 1);
    let batch = vec![request("a"), request("b"), with(|r| r.max_attempts = Some(0)), request("c")];
    match world.step(Input::EnqueueBatch(batch)).reply {
        Reply::Rejected(Rejection::Validation(error)) => {
            assert_eq!(
                (error.index, error.field.as_str(), error.kind),
                (Some(2), "max_attempts", ValidationKind::OutOfRange)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(world.store.is_empty());
    // An unknown parent is found only while enqueueing; still nothing is written.
    let orphan = with(|r| r.parent_job_id = Some("67e55044-10b1-426f-9247-bb680e5fe0c8".into()));
    match world.step(Input::EnqueueBatch(vec![request("a"), orphan])).reply {
        Reply::Rejected(Rejection::Validation(error)) => {
            assert_eq!((error.index, error.kind), (Some(1), ValidationKind::UnknownParent))
        }
        other => panic!("{other:?}"),
    }
    assert!(world.store.is_empty());
    for size in [0, semantica_core::limits::BATCH_JOBS_MAX + 1] {
        let batch = (0..size).map(|n| request(&n.to_string())).collect();
        match world.step(Input::EnqueueBatch(batch)).reply {
            Reply::Rejected(Rejection::Validation(error)) => {
                assert_eq!((error.field.as_str(), error.kind), ("jobs", ValidationKind::OutOfRange))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(world.store.is_empty());
}
