//! Guarantee 7 as far as the engine is concerned: a step is acknowledged only after its
//! writes are committed, a failed commit leaves no trace, and writes decided on a stale
//! read are refused whole.

mod harness;

use harness::{config, request, START_MS};
use semantica_core::{
    CancelRequest, Engine, Input, JobId, JobPage, JobQuery, JobState, MemStore, QueueStats, Reply, SeededIds,
    SplitMix64, Store, StoreError, StoreResult, WriteSet,
};

/// The reference store whose commits fail while `failing` is set.
struct FlakyStore {
    inner: MemStore,
    failing: bool,
}

impl Store for FlakyStore {
    fn get(&self, id: JobId) -> StoreResult<Option<semantica_core::Job>> {
        self.inner.get(id)
    }
    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        self.inner.max_generation(subject_key)
    }
    fn max_seq(&self) -> StoreResult<u64> {
        self.inner.max_seq()
    }
    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.active_jobs_of_subject(subject_key)
    }
    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<semantica_core::JobId>> {
        self.inner.occupying_job_ids(subject_key)
    }
    fn claim_candidates(
        &self,
        queue: &str,
        min: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.claim_candidates(queue, min, after, limit)
    }
    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        self.inner.ready_queues()
    }
    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        self.inner.process_count(queue)
    }
    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.due_jobs(now_ms, limit)
    }
    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.wall_timed_jobs(offset_ms, limit)
    }
    fn labelled_jobs(
        &self,
        tag: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.labelled_jobs(tag, group, limit)
    }
    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.waiting_children(parent, limit)
    }
    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.event_waiters(name, limit)
    }
    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.system_waiters(limit)
    }
    fn process_holders(&self, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.process_holders(limit)
    }
    fn purgeable(&self, before_ms: u64, limit: usize) -> StoreResult<Vec<semantica_core::Job>> {
        self.inner.purgeable(before_ms, limit)
    }
    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        self.inner.query(query)
    }
    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.inner.queue_stats()
    }
    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        self.inner.paused_queues()
    }
    fn recurring(&self, name: &str) -> StoreResult<Option<semantica_core::Recurring>> {
        self.inner.recurring(name)
    }
    fn recurring_list(&self) -> StoreResult<Vec<semantica_core::Recurring>> {
        self.inner.recurring_list()
    }
    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<semantica_core::Recurring>> {
        self.inner.recurring_due(now_ms, limit)
    }
    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        if self.failing {
            return Err(StoreError::Unavailable("disk full (injected)".into()));
        }
        self.inner.commit(writes)
    }
}

fn engine(seed: u64) -> Engine {
    Engine::new(config(), Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)))
}

#[test]
fn a_failed_commit_acknowledges_nothing_and_loses_nothing_acknowledged() {
    let mut store = FlakyStore { inner: MemStore::new(), failing: false };
    let mut engine = engine(3);
    let _ = engine.run(START_MS, Input::Recover, &mut store).unwrap();
    let first = match engine.run(START_MS, Input::Enqueue(Box::new(request("a"))), &mut store).unwrap().reply {
        Reply::Enqueued(enqueued) => enqueued.job_id,
        other => panic!("{other:?}"),
    };
    let before = store.inner.clone();
    store.failing = true;
    // Enqueue, claim and cancel all fail at commit: the caller gets the store error.
    for input in [
        Input::Enqueue(Box::new(request("a"))),
        Input::Claim { queue: None },
        Input::Cancel(CancelRequest { job_id: Some(first), ..CancelRequest::default() }),
    ] {
        let result = engine.run(START_MS + 1, input, &mut store);
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }
    assert_eq!(store.inner.jobs().cloned().collect::<Vec<_>>(), before.jobs().cloned().collect::<Vec<_>>());
    // Space returns: the same requests succeed, and the first job was never lost.
    store.failing = false;
    let claimed = engine.run(START_MS + 2, Input::Claim { queue: None }, &mut store).unwrap();
    assert!(matches!(claimed.reply, Reply::Claimed(Some(ref job)) if job.id == first));
    assert_eq!(store.get(first).unwrap().unwrap().state, JobState::Running);
}

#[test]
fn writes_decided_on_a_stale_read_are_refused_whole() {
    // Two engines share one store, as two daemons would share one database.
    let mut store = MemStore::new();
    let mut one = engine(1);
    let mut two = engine(2);
    let _ = one.run(START_MS, Input::Recover, &mut store).unwrap();
    let _ = two.run(START_MS, Input::Recover, &mut store).unwrap();
    let id = match one.run(START_MS, Input::Enqueue(Box::new(request("a"))), &mut store).unwrap().reply {
        Reply::Enqueued(enqueued) => enqueued.job_id,
        other => panic!("{other:?}"),
    };
    // Both decide to start the same job; the first commit wins, the second is refused.
    let step_one = one.handle(START_MS + 1, Input::Claim { queue: None }, &store).unwrap();
    let step_two = two.handle(START_MS + 1, Input::Claim { queue: None }, &store).unwrap();
    store.commit(&step_one.persist).unwrap();
    let refused = store.commit(&step_two.persist);
    assert!(matches!(refused, Err(StoreError::Conflict { job_id, .. }) if job_id == id), "{refused:?}");
    let job = store.get(id).unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.version), (JobState::Running, 1, 2));
    // Run again on fresh reads, the second engine finds nothing left to start.
    let retry = two.run(START_MS + 1, Input::Claim { queue: None }, &mut store).unwrap();
    assert_eq!(retry.reply, Reply::Claimed(None));
}

#[test]
fn a_failed_step_leaves_the_engines_memory_as_it_was() {
    // Regression (found by the simulator's review): Recover and SystemChanged used to
    // change the engine before their writes were committed.
    let mut store = FlakyStore { inner: MemStore::new(), failing: false };
    let mut first = engine(4);
    let _ = first.run(START_MS, Input::Recover, &mut store).unwrap();
    let mut r = request("s");
    r.conditions = Some(semantica_core::Conditions { wait_for_idle: true, ..Default::default() });
    let waiting = match first.run(START_MS, Input::Enqueue(Box::new(r)), &mut store).unwrap().reply {
        Reply::Enqueued(enqueued) => enqueued.job_id,
        other => panic!("{other:?}"),
    };
    let running = match first.run(START_MS, Input::Enqueue(Box::new(request("t"))), &mut store).unwrap().reply {
        Reply::Enqueued(enqueued) => enqueued.job_id,
        other => panic!("{other:?}"),
    };
    let _ = first.run(START_MS, Input::Claim { queue: None }, &mut store).unwrap();
    assert_eq!(store.get(running).unwrap().unwrap().state, JobState::Running);

    // A new engine whose recovery cannot commit has not recovered.
    let mut second = engine(5);
    store.failing = true;
    assert!(second.run(START_MS + 1, Input::Recover, &mut store).is_err());
    store.failing = false;
    let _ = second.run(START_MS + 1, Input::Recover, &mut store).unwrap();
    assert_eq!(
        store.get(running).unwrap().unwrap().error.map(|e| e.kind),
        Some(semantica_core::ErrorKind::DaemonRestart)
    );

    // A system change that cannot commit is not taken on either: sent again, it moves the
    // waiting job.
    let idle = semantica_core::SystemState { cpu_load_percent: 1, is_idle: true, is_charging: true };
    store.failing = true;
    assert!(second.run(START_MS + 2, Input::SystemChanged(idle), &mut store).is_err());
    assert_eq!(second.system(), semantica_core::SystemState::UNKNOWN);
    store.failing = false;
    let _ = second.run(START_MS + 2, Input::SystemChanged(idle), &mut store).unwrap();
    assert_eq!(second.system(), idle);
    assert_eq!(store.get(waiting).unwrap().unwrap().state, JobState::Queued);
}

#[test]
fn a_recovery_that_failed_must_be_run_again_before_anything_else() {
    let mut store = FlakyStore { inner: MemStore::new(), failing: false };
    let mut before = engine(6);
    let _ = before.run(START_MS, Input::Recover, &mut store).unwrap();
    let _ = before.run(START_MS, Input::Enqueue(Box::new(request("a"))), &mut store).unwrap();
    let _ = before.run(START_MS, Input::Claim { queue: None }, &mut store).unwrap();
    // The daemon dies with a job RUNNING; its successor cannot commit the recovery.
    let mut engine = engine(7);
    store.failing = true;
    assert!(engine.run(START_MS, Input::Recover, &mut store).is_err());
    store.failing = false;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = engine.run(START_MS, Input::Claim { queue: None }, &mut store);
    }));
    assert!(result.is_err(), "an engine whose recovery failed must refuse other inputs");
}
