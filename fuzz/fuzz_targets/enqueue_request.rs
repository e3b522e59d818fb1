//! Arbitrary enqueue requests through validation and into the engine: validation must
//! never panic, and whatever it accepts the engine must enqueue without breaking a rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantica_core::{
    BackoffRequest, Config, Engine, EnqueueRequest, Input, MemStore, Reply, ScheduleRequest, SeededIds, SplitMix64,
};

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

fuzz_target!(|data: &[u8]| {
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
    let mut store = MemStore::new();
    let mut engine = Engine::new(Config::new(2, ["noop"]), Box::new(SeededIds::new(1)), Box::new(SplitMix64::new(1)));
    let now_ms = 1_700_000_000_000;
    let _ = engine.run(now_ms, Input::Recover, &mut store).expect("memory store");
    let step = engine.run(now_ms, Input::Enqueue(Box::new(request.clone())), &mut store).expect("memory store");
    match step.reply {
        Reply::Enqueued(enqueued) => assert!(store.len() == 1 && enqueued.generation <= i64::MAX as u64),
        Reply::Rejected(_) => assert!(store.is_empty()),
        other => panic!("enqueue answered {other:?}"),
    }
});
