//! The random operations the engine's property tests (`core/tests/properties.rs`) and the
//! SQLite store's differential test (`adapters/tests/differential.rs`) play: one
//! generator, so that both explore the same space. Each test turns an [`Op`] into engine
//! inputs its own way (the differential test with text that stresses SQL: Unicode, `%`,
//! NUL). The adapters' test compiles this file by `#[path]`.

// Each test reads the parts of a spec it turns into a request.
#![allow(dead_code)]

use proptest::prelude::*;

/// One thing that can happen to the engine. Small numbers pick among what exists when it
/// is played (`pick % len`).
#[derive(Clone, Debug)]
pub enum Op {
    Enqueue(Spec),
    /// A batch; `Some(i)` makes job `i % len` invalid, so that the batch is refused.
    Batch(Vec<Spec>, Option<usize>),
    /// A claim of any queue, or of the queue given.
    Claim(Option<u8>),
    /// A `ClaimBatch` of 1 + n claims, of any queue or of the queue given.
    ClaimBatch(Option<u8>, u8),
    Started(u8),
    /// A run ends: (which run, which outcome).
    Finish(u8, u8),
    /// Several runs end in one `ReportBatch`.
    FinishBatch(Vec<(u8, u8)>),
    /// The last report again.
    DuplicateReport,
    /// A report of an attempt before a job's current one.
    StaleReport(u8),
    Cancel(u8),
    CancelTag(u8),
    CancelGroup(u8),
    Advance(u16),
    Event(u8),
    System(u8, bool, bool),
    /// Remove jobs finished more than this many ms ago, at most this many.
    Purge(u16, u8),
    Restart,
    /// Pause (`true`) or resume a queue.
    Pause(u8, bool),
    /// Retry a known job by id (whatever its state: a live one is a conflict).
    Retry(u8),
    /// Retry the ended jobs of a queue, at most this many.
    RetryQueue(u8, u8),
}

/// An enqueue, as small numbers that each test turns into a request.
#[derive(Clone, Debug)]
pub struct Spec {
    pub subject: u8,
    pub generation: Option<u8>,
    pub priority: i8,
    pub queue: u8,
    pub delay_ms: Option<u16>,
    pub ttl_ms: Option<u16>,
    pub deadline_ms: Option<u16>,
    pub timeout_ms: Option<u16>,
    pub max_attempts: u8,
    pub jitter_percent: u8,
    pub parent: Option<u8>,
    pub tag: u8,
    pub event: Option<u8>,
    pub idle: bool,
    pub charging: bool,
    /// A subprocess job rather than an in-process one.
    pub exec: bool,
    /// An instant in-process job (`noop`, which the tests' engines run in the claim
    /// step) rather than one the executor runs; a subprocess job stays one.
    pub instant: bool,
}

/// Which kinds of operation a run draws.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub subjects: u8,
    pub timing: bool,
    pub conditions: bool,
    pub parents: bool,
    pub restarts: bool,
    /// Claims of one named queue, subprocess specs and purges: what the store must
    /// answer that the engine's rules do not depend on.
    pub store: bool,
}

/// Every rule at once (the engine's properties; jobs are never purged under them).
pub const ALL: Mix = Mix { subjects: 6, timing: true, conditions: true, parents: true, restarts: true, store: false };
/// Every rule and what only a store must answer (the differential test).
pub const STORE: Mix = Mix { store: true, ..ALL };

/// Outcomes `Op::Finish` draws: tests map 0..OUTCOMES onto their kinds of end.
pub const OUTCOMES: u8 = 5;

/// `Some` with probability `p` (never when `p` is 0).
fn maybe<T: std::fmt::Debug + Clone + 'static>(
    p: f64,
    inner: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    if p == 0.0 {
        Just(None).boxed()
    } else {
        prop::option::weighted(p, inner).boxed()
    }
}

fn flag(p: f64) -> BoxedStrategy<bool> {
    if p == 0.0 {
        Just(false).boxed()
    } else {
        prop::bool::weighted(p).boxed()
    }
}

pub fn spec(mix: Mix) -> impl Strategy<Value = Spec> {
    let timing = mix.timing;
    let conditions = mix.conditions;
    let parents = mix.parents;
    (
        (0..mix.subjects, prop::option::weighted(0.6, 0u8..6), -3i8..4, 0u8..3),
        (
            maybe(if timing { 0.3 } else { 0.0 }, 0u16..400),
            maybe(if timing { 0.2 } else { 0.0 }, 1u16..600),
            maybe(if timing { 0.2 } else { 0.0 }, 0u16..900),
            maybe(if timing { 0.3 } else { 0.0 }, 1u16..300),
        ),
        (1u8..4, 0u8..=100, maybe(if parents { 0.3 } else { 0.0 }, any::<u8>()), 0u8..3),
        (
            maybe(if conditions { 0.2 } else { 0.0 }, 0u8..2),
            flag(if conditions { 0.15 } else { 0.0 }),
            flag(if conditions { 0.15 } else { 0.0 }),
            flag(if mix.store { 0.5 } else { 0.0 }),
            flag(0.3),
        ),
    )
        .prop_map(
            |(
                (subject, generation, priority, queue),
                (delay_ms, ttl_ms, deadline_ms, timeout_ms),
                (max_attempts, jitter_percent, parent, tag),
                (event, idle, charging, exec, instant),
            )| Spec {
                subject,
                generation,
                priority,
                queue,
                delay_ms,
                ttl_ms,
                deadline_ms,
                timeout_ms,
                max_attempts,
                jitter_percent,
                parent,
                tag,
                event,
                idle,
                charging,
                exec,
                instant,
            },
        )
}

pub fn op(mix: Mix) -> impl Strategy<Value = Op> {
    let queue = move || maybe(if mix.store { 0.2 } else { 0.0 }, 0u8..3);
    let mut choices: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (8, spec(mix).prop_map(Op::Enqueue).boxed()),
        (
            1,
            (prop::collection::vec(spec(mix), 1..5), prop::option::weighted(0.3, 0usize..5))
                .prop_map(|(specs, bad)| Op::Batch(specs, bad))
                .boxed(),
        ),
        (8, queue().prop_map(Op::Claim).boxed()),
        (3, (queue(), 0u8..5).prop_map(|(queue, extra)| Op::ClaimBatch(queue, extra)).boxed()),
        (3, any::<u8>().prop_map(Op::Started).boxed()),
        (8, (any::<u8>(), 0..OUTCOMES).prop_map(|(pick, outcome)| Op::Finish(pick, outcome)).boxed()),
        (3, prop::collection::vec((any::<u8>(), 0..OUTCOMES), 1..6).prop_map(Op::FinishBatch).boxed()),
        (1, Just(Op::DuplicateReport).boxed()),
        (1, any::<u8>().prop_map(Op::StaleReport).boxed()),
        (2, any::<u8>().prop_map(Op::Cancel).boxed()),
        (1, (0u8..3).prop_map(Op::CancelTag).boxed()),
        (1, (0u8..3).prop_map(Op::CancelGroup).boxed()),
        (if mix.timing { 4 } else { 1 }, (1u16..400).prop_map(Op::Advance).boxed()),
        (2, (0u8..3, any::<bool>()).prop_map(|(queue, paused)| Op::Pause(queue, paused)).boxed()),
        (1, any::<u8>().prop_map(Op::Retry).boxed()),
        (1, (0u8..3, 1u8..4).prop_map(|(queue, limit)| Op::RetryQueue(queue, limit)).boxed()),
    ];
    if mix.conditions {
        choices.push((2, (0u8..2).prop_map(Op::Event).boxed()));
        let system =
            (0u8..100, any::<bool>(), any::<bool>()).prop_map(|(cpu, idle, charging)| Op::System(cpu, idle, charging));
        choices.push((2, system.boxed()));
    }
    if mix.restarts {
        choices.push((1, Just(Op::Restart).boxed()));
    }
    if mix.store {
        choices.push((1, (0u16..800, 1u8..10).prop_map(|(age, limit)| Op::Purge(age, limit)).boxed()));
    }
    prop::strategy::Union::new_weighted(choices)
}

pub fn ops(mix: Mix) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(mix), 1..80)
}

/// The queue a small number names.
pub fn queue_name(queue: u8) -> &'static str {
    ["default", "serial", "bulk"][usize::from(queue) % 3]
}

/// `items[index % len]`, if there are any.
pub fn pick<T: Clone>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}
