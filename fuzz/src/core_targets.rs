//! The fuzz targets that need nothing but `semantica-core` (and the rule checker of
//! `core/tests/harness`). This file is compiled twice: into `semantica-fuzz` (for
//! libFuzzer) and, by `#[path]`, into `core/tests/fuzz_harness.rs` (proptest on stable,
//! in CI). Both crates declare the checker as `crate::harness`. Keep it to
//! `semantica-core` and `std`.

use crate::bytes::Bytes;
use crate::harness::{self, World};
use semantica_core::{
    BackoffRequest, CancelRequest, Conditions, Config, Engine, EnqueueRequest, ErrorKind, Input, JobId, JobQuery,
    MemStore, Outcome, RecurringRequest, Reply, Report, RetryRequest, ScheduleRequest, SeededIds, SplitMix64,
    SystemState,
};

/// Most operations one input drives; longer inputs are cut.
const OPS_MAX: usize = 256;
const START_MS: u64 = 1_700_000_000_000;

/// Validation, then the engine on a fresh store; returns the store and the reply.
pub fn enqueue_into_engine(request: EnqueueRequest, job_types: &[&str]) -> (MemStore, Reply) {
    let mut store = MemStore::new();
    let mut engine = Engine::new(
        Config::new(2, job_types.iter().copied()),
        Box::new(SeededIds::new(1)),
        Box::new(SplitMix64::new(1)),
    );
    let _ = engine.run(START_MS, Input::Recover, &mut store).expect("memory store");
    let step = engine.run(START_MS, Input::Enqueue(Box::new(request)), &mut store).expect("memory store");
    match &step.reply {
        Reply::Enqueued(enqueued) => assert!(store.len() == 1 && enqueued.generation <= i64::MAX as u64),
        Reply::Rejected(_) => assert!(store.is_empty(), "a refused enqueue wrote a job"),
        other => panic!("enqueue answered {other:?}"),
    }
    (store, step.reply)
}

/// Cuts the input into fields at 0xFF bytes; numbers come from the first bytes of a field.
fn fields(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == 0xFF).collect()
}

fn text(field: Option<&&[u8]>) -> Option<String> {
    field.map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

fn number(field: Option<&&[u8]>) -> Option<i64> {
    let bytes = field?;
    let mut raw = [0u8; 8];
    for (slot, byte) in raw.iter_mut().zip(bytes.iter()) {
        *slot = *byte;
    }
    Some(i64::from_le_bytes(raw))
}

/// Target `enqueue_request`: an arbitrary request through validation into the engine.
pub fn enqueue_request(data: &[u8]) {
    let f = fields(data);
    let request = EnqueueRequest {
        job_type: text(f.first()),
        queue: text(f.get(1)),
        subject_key: text(f.get(2)),
        generation: number(f.get(3)),
        payload_json: text(f.get(4)),
        priority: number(f.get(5)),
        max_attempts: number(f.get(6)),
        backoff: f.get(7).map(|_| BackoffRequest {
            base_ms: number(f.get(7)),
            factor: number(f.get(8)).map(|n| n as f64 / 1000.0),
            max_ms: number(f.get(9)),
            jitter: number(f.get(10)).map(|n| n as f64 / 1e6),
        }),
        timeout_ms: number(f.get(11)),
        ttl_ms: number(f.get(12)),
        deadline_ms: number(f.get(13)),
        schedule: f.get(14).map(|_| ScheduleRequest { at_ms: None, delay_ms: number(f.get(14)) }),
        parent_job_id: text(f.get(15)),
        tag: text(f.get(16)),
        chain_group_id: text(f.get(17)),
        trace_id: text(f.get(18)),
        ..EnqueueRequest::default()
    };
    let _ = enqueue_into_engine(request, &["noop"]);
}

/// An enqueue request from the input: mostly well-formed (so that jobs exist and run),
/// with a high bit that turns the numbers into raw 64-bit values.
fn request(bytes: &mut Bytes, now_ms: u64, known: &[JobId]) -> EnqueueRequest {
    let shape = bytes.u8();
    let wild = bytes.u8() & 0x80 != 0;
    let number = |bytes: &mut Bytes, tame: i64| if wild { bytes.i64() } else { tame };
    let mut request = harness::request(&format!("subject-{}", bytes.u8() % 6));
    request.queue = Some(["default", "serial", "bulk", "Not A Queue"][usize::from(bytes.u8() % 4)].into());
    if shape & 1 != 0 {
        let tame = i64::from(bytes.u8() % 6);
        request.generation = Some(number(bytes, tame));
    }
    let tame = i64::from(bytes.u8() as i8 % 4);
    request.priority = Some(number(bytes, tame));
    if shape & 2 != 0 {
        let tame = i64::from(bytes.u16() % 400);
        request.schedule = Some(ScheduleRequest { at_ms: None, delay_ms: Some(number(bytes, tame)) });
    }
    if shape & 4 != 0 {
        let tame = i64::from(bytes.u16() % 600 + 1);
        request.ttl_ms = Some(number(bytes, tame));
    }
    if shape & 8 != 0 {
        let tame = (now_ms + u64::from(bytes.u16() % 900)) as i64;
        request.deadline_ms = Some(number(bytes, tame));
    }
    if shape & 16 != 0 {
        let tame = i64::from(bytes.u16() % 300 + 1);
        request.timeout_ms = Some(number(bytes, tame));
    }
    let tame = i64::from(bytes.u8() % 3 + 1);
    request.max_attempts = Some(number(bytes, tame));
    request.backoff = Some(BackoffRequest {
        base_ms: Some(50),
        factor: Some(2.0),
        max_ms: Some(400),
        jitter: Some(f64::from(bytes.u8() % 101) / 100.0),
    });
    if shape & 32 != 0 && !known.is_empty() {
        request.parent_job_id = Some(known[usize::from(bytes.u8()) % known.len()].to_string());
    }
    request.tag = Some(format!("tag-{}", bytes.u8() % 3));
    request.chain_group_id = Some(format!("group-{}", bytes.u8() % 3));
    if shape & 64 != 0 {
        let flags = bytes.u8();
        request.conditions = Some(Conditions {
            wait_for_idle: flags & 1 != 0,
            require_charging: flags & 2 != 0,
            wait_for_event: (flags & 4 != 0).then(|| format!("event-{}", flags >> 6)),
        });
    }
    request
}

fn pick<T: Clone>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}

/// Target `engine_ops`: the input is a seed and a sequence of engine inputs (enqueues,
/// batches, claims, executor reports including duplicates and stale ones, cancels,
/// time, events, system changes, restarts, purges, pauses, retries, recurring jobs and
/// wall-clock steps); the harness's checker judges every
/// step against the rules of API.md, and the engine must never panic.
pub fn engine_ops(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let seed = u64::from(bytes.u16());
    let mut world = World::new(harness::config(), seed);
    let mut known: Vec<JobId> = Vec::new();
    for _ in 0..OPS_MAX {
        if bytes.is_empty() {
            break;
        }
        match bytes.u8() % 24 {
            0..=3 => {
                let request = request(&mut bytes, world.now_ms, &known);
                if let Reply::Enqueued(enqueued) = world.enqueue(request) {
                    known.push(enqueued.job_id);
                }
            }
            4 => {
                let count = usize::from(bytes.u8() % 5) + 1;
                let requests: Vec<EnqueueRequest> =
                    (0..count).map(|_| request(&mut bytes, world.now_ms, &known)).collect();
                let before = world.store.len();
                match world.step(Input::EnqueueBatch(requests)).reply {
                    Reply::EnqueuedBatch(results) => known.extend(results.iter().map(|r| r.job_id)),
                    Reply::Rejected(_) => assert_eq!(world.store.len(), before, "a refused batch wrote jobs"),
                    other => panic!("batch answered {other:?}"),
                }
            }
            5..=7 => {
                world.claim();
            }
            8 => {
                let runs: Vec<_> = world.runs.iter().cloned().collect();
                if let Some(run) = pick(&runs, bytes.u8()) {
                    world.next_pid += 1;
                    let pid = world.next_pid;
                    world.report(Report::Started {
                        job_id: run.job_id,
                        attempt: run.attempt,
                        pid: Some(pid),
                        pid_started_at: Some(9),
                    });
                }
            }
            9..=11 => {
                let runs: Vec<_> = world.runs.iter().cloned().collect();
                let (index, kind) = (bytes.u8(), bytes.u8() % 4);
                if let Some(run) = pick(&runs, index) {
                    let outcome = match (run.killed, kind) {
                        (true, _) => {
                            Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "killed".into() }
                        }
                        (false, 0 | 1) => {
                            Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] }
                        }
                        (false, 2) => {
                            Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(3), message: "exit 3".into() }
                        }
                        (false, _) => Outcome::TimedOut,
                    };
                    world.report(Report::Finished { job_id: run.job_id, attempt: run.attempt, outcome });
                }
            }
            12 => {
                // The same report again, or a report about any job and any attempt.
                let report = match (bytes.u8() % 2, world.last_report.clone(), pick(&known, bytes.u8())) {
                    (0, Some(report), _) => Some(report),
                    (_, _, Some(job_id)) => Some(Report::Finished {
                        job_id,
                        attempt: u32::from(bytes.u8() % 4),
                        outcome: Outcome::Succeeded {
                            exit_code: Some(0),
                            result_summary_json: None,
                            artifacts: vec![],
                        },
                    }),
                    _ => None,
                };
                if let Some(report) = report {
                    world.step(Input::Report(report));
                }
            }
            13 => {
                if let Some(job_id) = pick(&known, bytes.u8()) {
                    world.step(Input::Cancel(CancelRequest { job_id: Some(job_id), ..CancelRequest::default() }));
                }
            }
            14 => {
                let which = bytes.u8();
                let label = format!("{}-{}", if which & 1 == 0 { "tag" } else { "group" }, (which >> 1) % 3);
                let request = if which & 1 == 0 {
                    CancelRequest { tag: Some(label), ..CancelRequest::default() }
                } else {
                    CancelRequest { chain_group_id: Some(label), ..CancelRequest::default() }
                };
                world.step(Input::Cancel(request));
            }
            15 | 16 => {
                let ms = u64::from(bytes.u16() % 1000);
                world.advance(ms);
            }
            17 => {
                let name = format!("event-{}", bytes.u8() % 4);
                world.step(Input::Event { name });
            }
            18 => {
                let flags = bytes.u8();
                let system = SystemState {
                    cpu_load_percent: u32::from(bytes.u8() % 101),
                    is_idle: flags & 1 != 0,
                    is_charging: flags & 2 != 0,
                };
                world.step(Input::SystemChanged(system));
            }
            20 => {
                let flags = bytes.u8();
                let queue = ["default", "serial", "bulk"][usize::from(flags % 3)].to_owned();
                world.step(Input::PauseQueue { queue, paused: flags & 4 != 0 });
            }
            21 => {
                let request = match pick(&known, bytes.u8()) {
                    Some(job_id) if bytes.u8() % 2 == 0 => {
                        RetryRequest { job_id: Some(job_id), ..RetryRequest::default() }
                    }
                    _ => RetryRequest {
                        filter: Some(JobQuery { queues: vec!["default".into()], ..JobQuery::default() }),
                        limit: Some(i64::from(bytes.u8() % 4) + 1),
                        job_id: None,
                    },
                };
                if let Reply::Retried(results) = world.step(Input::Retry(Box::new(request))).reply {
                    known.extend(results.iter().map(|r| r.job_id));
                }
            }
            22 => {
                let flags = bytes.u8();
                let name = format!("r{}", flags % 3);
                if flags & 8 != 0 {
                    world.step(Input::DeleteRecurring { name });
                } else {
                    let cron = ["* * * * *", "*/5 * * * *", "0 * * * *", "not a cron"][usize::from((flags >> 4) % 4)];
                    let job = request(&mut bytes, world.now_ms, &[]);
                    let job = EnqueueRequest { generation: None, schedule: None, ..job };
                    let request = RecurringRequest { name, cron: cron.into(), timezone: None, job };
                    world.step(Input::SetRecurring(Box::new(request)));
                }
            }
            23 => {
                // The wall clock stepped: minutes or days, back or forward.
                let step_ms = i64::from(bytes.u16()) * if bytes.u8() % 2 == 0 { 1_000 } else { -60_000 };
                world.step(Input::WallClock { offset_ms: step_ms });
                world.advance(u64::from(bytes.u16()) * 100);
            }
            _ => {
                if bytes.u8() % 2 == 0 {
                    world.restart();
                } else {
                    let limit = usize::from(bytes.u8() % 8) + 1;
                    world.step(Input::Purge { finished_before_ms: world.now_ms, limit });
                }
            }
        }
    }
}
