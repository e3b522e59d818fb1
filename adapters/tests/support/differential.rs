//! The differential run of a real store against core's reference store, shared by every
//! store's test (`differential.rs` for SQLite, `pg_differential.rs` for Postgres): two
//! engines built from the same seeds run the same random operations, one on a
//! `MemStore`, one on the real store. Every step must come out identical, and after every
//! step every read the engine can ask (and the full contents, page by page) must answer
//! identically. A restart drops the engines and opens the real store again.

use std::collections::BTreeSet;

use crate::ops::{pick, queue_name, Op, Spec};
use semantica_core::{
    Action, BackoffRequest, CancelRequest, Conditions, Config, Engine, EnqueueRequest, ErrorKind, ExecRequest, Input,
    JobId, JobQuery, JobState, MemStore, Outcome, Reply, Report, RetryRequest, ScheduleRequest, SeededIds, SplitMix64,
    Store, SystemState,
};

const START_MS: u64 = 1_700_000_000_000;

/// How a picked run ended: a killed run by signal; otherwise `outcome` picks success (with
/// or without a result and artifacts), failure or timeout.
fn outcome_for(killed: bool, outcome: u8) -> Outcome {
    match (killed, outcome) {
        (true, _) => Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "killed".into() },
        (false, 0) => Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] },
        (false, 1) => Outcome::Succeeded {
            exit_code: Some(0),
            result_summary_json: Some("{\"rows\":3,\"note\":\"ünï\"}".into()),
            artifacts: vec![
                semantica_core::Artifact { name: "out.txt".into(), bytes: 12 },
                semantica_core::Artifact { name: "b\"in".into(), bytes: u64::MAX },
            ],
        },
        (false, 2) => Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(-3), message: "exit 3".into() },
        (false, 3) => {
            Outcome::Failed { kind: ErrorKind::HandlerError, exit_code: None, message: "boom\n\0 with a nul".into() }
        }
        (false, _) => Outcome::TimedOut,
    }
}

fn config() -> Config {
    let mut config = Config::new(3, ["noop", "work"]);
    config.instant_job_types.insert("noop".into());
    config.queue_concurrency.insert("serial".into(), 1);
    // Claims record it, so that the stores' per-node answers are compared too.
    config.node = Some("node-a".into());
    config
}

fn engine(seed: u64) -> Engine {
    Engine::new(config(), Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)))
}

/// The two worlds, and what both have been told so far.
pub struct Pair<S: Store> {
    /// Opens the real store again on what it holds (a restart): `None` for the first open.
    reopen: Box<dyn FnMut() -> S>,
    /// The real store's name in failure messages.
    name: &'static str,
    mem_engine: Engine,
    sql_engine: Engine,
    pub mem: MemStore,
    pub sql: S,
    seed: u64,
    restarts: u64,
    now_ms: u64,
    known: Vec<JobId>,
    subjects: BTreeSet<String>,
    /// (job, attempt, killed) of every attempt spawned and not reported finished.
    runs: Vec<(JobId, u32, bool)>,
    system: SystemState,
    steps: u64,
    /// Every state some step wrote, to show the sequences reach them all.
    pub states: BTreeSet<JobState>,
    /// The last report sent, for `Op::DuplicateReport`.
    last_report: Option<Report>,
}

impl<S: Store> Pair<S> {
    /// `open` opens the real store, empty the first time and on what it holds after.
    pub fn new(seed: u64, name: &'static str, mut open: Box<dyn FnMut() -> S>) -> Pair<S> {
        let sql = open();
        let mut pair = Pair {
            reopen: open,
            name,
            mem_engine: engine(seed),
            sql_engine: engine(seed),
            mem: MemStore::new(),
            sql,
            seed,
            restarts: 0,
            now_ms: START_MS,
            known: Vec::new(),
            subjects: BTreeSet::new(),
            runs: Vec::new(),
            system: SystemState::UNKNOWN,
            steps: 0,
            states: BTreeSet::new(),
            last_report: None,
        };
        pair.step(Input::Recover);
        pair
    }

    /// One input on both sides; the steps must be equal, and so must every read after.
    fn step(&mut self, input: Input) {
        match &input {
            Input::Report(report) => self.last_report = Some(report.clone()),
            Input::ReportBatch(reports) => self.last_report = reports.last().cloned(),
            _ => {}
        }
        let mem_step = self.mem_engine.run(self.now_ms, input.clone(), &mut self.mem).expect("MemStore never fails");
        let sql_step = self.sql_engine.run(self.now_ms, input.clone(), &mut self.sql);
        let sql_step =
            sql_step.unwrap_or_else(|e| panic!("seed {} input {input:?}: {} failed: {e}", self.seed, self.name));
        assert_eq!(mem_step, sql_step, "seed {} input {input:?}: the steps differ", self.seed);
        for job in mem_step.written() {
            self.subjects.insert(job.subject_key.clone());
        }
        for action in &mem_step.actions {
            match action {
                Action::Spawn(job) => self.runs.push((job.id, job.attempts, false)),
                Action::Kill(order) => {
                    for run in self.runs.iter_mut().filter(|r| r.0 == order.job_id && r.1 == order.attempt) {
                        run.2 = true;
                    }
                }
            }
        }
        match &mem_step.reply {
            Reply::Enqueued(one) => self.known.push(one.job_id),
            Reply::EnqueuedBatch(all) | Reply::Retried(all) => self.known.extend(all.iter().map(|e| e.job_id)),
            _ => {}
        }
        check_same_reads(&self.mem, &self.sql, self.name, self.now_ms, &self.known, &self.subjects)
            .unwrap_or_else(|diff| panic!("seed {} after {input:?}: {diff}", self.seed));
        self.steps += 1;
        self.states.extend(mem_step.written().map(|job| job.state));
    }

    fn restart(&mut self) {
        self.restarts += 1;
        let seed = self.seed ^ self.restarts.wrapping_mul(0x9E37_79B9);
        self.mem_engine = engine(seed);
        self.sql_engine = engine(seed);
        // The store must hold everything: read it through a new connection.
        self.sql = (self.reopen)();
        self.runs.clear();
        self.step(Input::Recover);
        self.step(Input::SystemChanged(self.system));
    }

    pub fn play(&mut self, op: &Op) {
        match op {
            Op::Enqueue(spec) => {
                let request = self.request(spec);
                self.step(Input::Enqueue(Box::new(request)));
            }
            Op::Batch(specs, bad) => {
                let mut requests: Vec<EnqueueRequest> = specs.iter().map(|s| self.request(s)).collect();
                if let Some(bad) = bad {
                    let index = bad % requests.len();
                    requests[index].queue = Some("Not A Queue".into());
                }
                self.step(Input::EnqueueBatch(requests));
            }
            Op::Claim(queue) => {
                let queue = queue.map(|q| queue_name(q).to_owned());
                self.step(Input::Claim { queue });
            }
            Op::Started(index) => {
                if let Some((job_id, attempt, _)) = pick(&self.runs, *index) {
                    let pid = 1000 + attempt;
                    let report =
                        Report::Started { job_id, attempt, pid: Some(pid), pid_started_at: Some(u64::MAX - 7) };
                    self.step(Input::Report(report));
                }
            }
            Op::ClaimBatch(queue, extra) => {
                let queue = queue.map(|q| queue_name(q).to_owned());
                self.step(Input::ClaimBatch { queue, max: 1 + usize::from(*extra) });
            }
            Op::FinishBatch(ends) => {
                let mut reports = Vec::new();
                for (index, outcome) in ends {
                    if let Some((job_id, attempt, killed)) = pick(&self.runs, *index) {
                        self.runs.retain(|r| !(r.0 == job_id && r.1 == attempt));
                        reports.push(Report::Finished { job_id, attempt, outcome: outcome_for(killed, *outcome) });
                    }
                }
                if !reports.is_empty() {
                    self.step(Input::ReportBatch(reports));
                }
            }
            Op::Finish(index, outcome) => {
                if let Some((job_id, attempt, killed)) = pick(&self.runs, *index) {
                    self.runs.retain(|r| !(r.0 == job_id && r.1 == attempt));
                    let outcome = outcome_for(killed, *outcome);
                    self.step(Input::Report(Report::Finished { job_id, attempt, outcome }));
                }
            }
            Op::DuplicateReport => {
                if let Some(report) = self.last_report.clone() {
                    self.step(Input::Report(report));
                }
            }
            Op::StaleReport(index) => {
                if let Some(id) = pick(&self.known, *index) {
                    let attempts = self.mem.get(id).unwrap().map_or(0, |job| job.attempts);
                    if attempts > 1 {
                        let outcome = outcome_for(false, 0);
                        self.step(Input::Report(Report::Finished { job_id: id, attempt: attempts - 1, outcome }));
                    }
                }
            }
            Op::Cancel(index) => {
                if let Some(id) = pick(&self.known, *index) {
                    self.step(Input::Cancel(CancelRequest { job_id: Some(id), ..CancelRequest::default() }));
                }
            }
            Op::CancelTag(tag) => {
                let tag = Some(format!("tag-{tag}"));
                self.step(Input::Cancel(CancelRequest { tag, ..CancelRequest::default() }));
            }
            Op::CancelGroup(group) => {
                let chain_group_id = Some(format!("group-{group}"));
                self.step(Input::Cancel(CancelRequest { chain_group_id, ..CancelRequest::default() }));
            }
            Op::Advance(ms) => {
                self.now_ms += u64::from(*ms);
                self.step(Input::Tick);
            }
            Op::Event(name) => {
                self.step(Input::Event { name: format!("event-{name}") });
            }
            Op::System(cpu, idle, charging) => {
                self.system = SystemState { cpu_load_percent: u32::from(*cpu), is_idle: *idle, is_charging: *charging };
                self.step(Input::SystemChanged(self.system));
            }
            Op::Purge(age_ms, limit) => {
                let finished_before_ms = self.now_ms - u64::from(*age_ms);
                self.step(Input::Purge { finished_before_ms, limit: usize::from(*limit) });
            }
            Op::Restart => self.restart(),
            Op::Pause(queue, paused) => {
                self.step(Input::PauseQueue { queue: queue_name(*queue).to_owned(), paused: *paused });
            }
            Op::Retry(index) => {
                if let Some(id) = pick(&self.known, *index) {
                    let request = RetryRequest { job_id: Some(id), ..RetryRequest::default() };
                    self.step(Input::Retry(Box::new(request)));
                }
            }
            Op::RetryQueue(queue, limit) => {
                let filter = JobQuery { queues: vec![queue_name(*queue).to_owned()], ..JobQuery::default() };
                let request = RetryRequest { filter: Some(filter), limit: Some(i64::from(*limit)), job_id: None };
                self.step(Input::Retry(Box::new(request)));
            }
        }
    }

    fn request(&self, spec: &Spec) -> EnqueueRequest {
        let mut request = EnqueueRequest {
            job_type: Some(if spec.instant { "noop" } else { "work" }.into()),
            queue: Some(queue_name(spec.queue).into()),
            // Unicode, '%' and '_' so that prefix queries cannot lean on LIKE.
            subject_key: Some(format!("sübject%_{}", spec.subject)),
            generation: spec.generation.map(i64::from),
            priority: Some(spec.priority.into()),
            payload_json: Some(format!("{{\"n\":{},\"s\":\"ä\\u0000\"}}", spec.subject)),
            ..EnqueueRequest::default()
        };
        request.schedule = spec.delay_ms.map(|d| ScheduleRequest { at_ms: None, delay_ms: Some(d.into()) });
        request.ttl_ms = spec.ttl_ms.map(i64::from);
        request.deadline_ms = spec.deadline_ms.map(|d| (self.now_ms + u64::from(d)) as i64);
        request.timeout_ms = spec.timeout_ms.map(i64::from);
        request.max_attempts = Some(spec.max_attempts.into());
        request.backoff = Some(BackoffRequest {
            base_ms: Some(50),
            factor: Some(1.5 + f64::from(spec.subject) / 7.0),
            max_ms: Some(400),
            jitter: Some(if spec.subject == 0 { -0.0 } else { f64::from(spec.tag) / 3.0 }),
        });
        request.parent_job_id = spec.parent.and_then(|p| pick(&self.known, p)).map(|id| id.to_string());
        request.tag = (spec.tag > 0).then(|| format!("tag-{}", spec.tag));
        request.chain_group_id = (spec.subject % 3 > 0).then(|| format!("group-{}", spec.subject % 3));
        request.conditions = Some(Conditions {
            wait_for_idle: spec.idle,
            require_charging: spec.charging,
            wait_for_event: spec.event.map(|e| format!("event-{e}")),
        });
        if spec.exec {
            request.exec = Some(ExecRequest {
                command: Some("/bin/echo".into()),
                args: vec!["a b".into(), "ç\"'".into(), String::new()],
                env: [("K".to_owned(), "v=1".to_owned()), ("EMPTY".to_owned(), String::new())].into(),
                cwd: (spec.subject % 2 == 0).then(|| "/tmp".into()),
            });
        }
        request
    }
}

/// Every question of the `Store` trait, asked of both stores, with the answers compared.
fn check_same_reads(
    mem: &MemStore,
    sql: &dyn Store,
    name: &str,
    now_ms: u64,
    known: &[JobId],
    subjects: &BTreeSet<String>,
) -> Result<(), String> {
    let same = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug, equal: bool| -> Result<(), String> {
        if equal {
            Ok(())
        } else {
            Err(format!("{what}:\n  MemStore: {a:?}\n  {name}: {b:?}"))
        }
    };
    macro_rules! same {
        ($what:expr, $a:expr, $b:expr $(,)?) => {{
            let (a, b) = ($a, $b);
            same(&$what, &a, &b, a == b)
        }};
    }
    same!("max_seq", mem.max_seq(), sql.max_seq())?;
    same!("paused_queues", mem.paused_queues(), sql.paused_queues())?;
    same!("queue_stats", mem.queue_stats(), sql.queue_stats())?;
    for id in known {
        same!(&format!("get {id}"), mem.get(*id), sql.get(*id))?;
        same!(&format!("waiting_children {id}"), mem.waiting_children(*id, 3), sql.waiting_children(*id, 3))?;
    }
    for subject in subjects {
        same!("max_generation", mem.max_generation(subject), sql.max_generation(subject))?;
        same!("active_jobs_of_subject", mem.active_jobs_of_subject(subject), sql.active_jobs_of_subject(subject))?;
    }
    same!("max_generation of a stranger", mem.max_generation("nobody"), sql.max_generation("nobody"))?;
    for queue in ["default", "serial", "bulk", "none"] {
        for floor in [None, Some(0), Some(2)] {
            // Continued after the first candidate, after the second (often of the same
            // priority), and from points of no job.
            let listed = mem.claim_candidates(queue, floor, None, 2).unwrap_or_default();
            let mut afters = vec![None, Some((0, 3)), Some((-5, 0)), Some((i32::MAX, 0))];
            afters.extend(listed.iter().map(|job| Some((job.priority, job.seq))));
            for after in afters {
                for limit in [1, 2, 64] {
                    same!(
                        &format!("claim_candidates {queue} {floor:?} after {after:?} {limit}"),
                        mem.claim_candidates(queue, floor, after, limit),
                        sql.claim_candidates(queue, floor, after, limit),
                    )?;
                }
            }
        }
        same!("process_count", mem.process_count(Some(queue)), sql.process_count(Some(queue)))?;
        for node in ["node-a", "node-b"] {
            let (mem_count, sql_count) =
                (mem.node_process_count(Some(queue), node), sql.node_process_count(Some(queue), node));
            same!("node_process_count", mem_count, sql_count)?;
        }
    }
    for node in ["node-a", "node-b"] {
        same!("node_process_count all", mem.node_process_count(None, node), sql.node_process_count(None, node))?;
        for limit in [1, usize::MAX] {
            same!("jobs_of_node", mem.jobs_of_node(node, limit), sql.jobs_of_node(node, limit))?;
        }
    }
    same!("process_count all", mem.process_count(None), sql.process_count(None))?;
    same!("ready_queues", mem.ready_queues(), sql.ready_queues())?;
    for at in [now_ms, now_ms + 150, now_ms + 1_000_000, u64::MAX] {
        for limit in [1, 3, usize::MAX] {
            same!(&format!("due_jobs {at} {limit}"), mem.due_jobs(at, limit), sql.due_jobs(at, limit))?;
            same!(&format!("purgeable {at} {limit}"), mem.purgeable(at, limit), sql.purgeable(at, limit))?;
        }
    }
    for tag in [None, Some("tag-1"), Some("tag-2")] {
        for group in [None, Some("group-1")] {
            for limit in [2, usize::MAX] {
                same!("labelled_jobs", mem.labelled_jobs(tag, group, limit), sql.labelled_jobs(tag, group, limit))?;
            }
        }
    }
    for name in ["event-0", "event-1"] {
        same!("event_waiters", mem.event_waiters(name, 2), sql.event_waiters(name, 2))?;
        same!("event_waiters all", mem.event_waiters(name, usize::MAX), sql.event_waiters(name, usize::MAX))?;
    }
    for limit in [1, usize::MAX] {
        same!("system_waiters", mem.system_waiters(limit), sql.system_waiters(limit))?;
        same!("process_holders", mem.process_holders(limit), sql.process_holders(limit))?;
    }
    same!("queue_stats", mem.queue_stats(), sql.queue_stats())?;
    for query in queries(now_ms) {
        same!(&format!("query {query:?}"), all_pages(mem, &query), all_pages(sql, &query))?;
    }
    Ok(())
}

fn queries(now_ms: u64) -> Vec<JobQuery> {
    let base = JobQuery { limit: 200, ..JobQuery::default() };
    vec![
        base.clone(),
        JobQuery { limit: 3, ..base.clone() },
        JobQuery { limit: 2, descending: true, ..base.clone() },
        JobQuery { states: vec![JobState::Queued, JobState::Failed], limit: 2, ..base.clone() },
        JobQuery { queues: vec!["serial".into(), "bulk".into()], job_type: Some("work".into()), ..base.clone() },
        JobQuery { tag: Some("tag-1".into()), chain_group_id: Some("group-2".into()), ..base.clone() },
        JobQuery { subject_key_prefix: Some("sübject%_1".into()), limit: 1, ..base.clone() },
        JobQuery { subject_key_prefix: Some("sü".into()), descending: true, ..base.clone() },
        JobQuery { subject_key_prefix: Some("s%".into()), ..base.clone() },
        JobQuery { created_after_ms: Some(now_ms.saturating_sub(300)), ..base.clone() },
        JobQuery { after_seq: Some(u64::MAX), descending: true, limit: 4, ..base.clone() },
        JobQuery { bytes_max: Some(1), ..base.clone() },
        JobQuery { bytes_max: Some(300), descending: true, ..base.clone() },
        JobQuery { after_seq: Some(u64::MAX), ..base },
    ]
}

/// Every page of `query`, following `next_after_seq`, with each page's cursor.
pub fn all_pages(store: &dyn Store, query: &JobQuery) -> Vec<(Vec<JobId>, Option<u64>, Vec<semantica_core::Job>)> {
    let mut pages = Vec::new();
    let mut query = query.clone();
    for _ in 0..1000 {
        let page = store.query(&query).expect("query");
        let next = page.next_after_seq;
        pages.push((page.items.iter().map(|j| j.id).collect(), next, page.items));
        match next {
            Some(after) => query.after_seq = Some(after),
            None => return pages,
        }
    }
    panic!("more than 1000 pages");
}
