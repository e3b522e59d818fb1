//! Several engines (nodes) on one store: claims record the node, a restart recovers only
//! its own node's attempts, `NodeLost` ends a lost node's attempts (`node_lost`), and a
//! lost node's late reports change nothing (the fencing number of an attempt is its job
//! id and attempt number). Checked over random interleavings of three engines sharing one
//! `MemStore`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use semantica_core::{
    Config, Engine, EnqueueRequest, ErrorKind, Input, Job, JobId, JobState, MemStore, Outcome, Reply, Report,
    SeededIds, SplitMix64, Store,
};

const NODES: usize = 3;
const WORKERS: usize = 2;
const START_MS: u64 = 1_700_000_000_000;

fn node_name(node: usize) -> String {
    format!("node-{node}")
}

fn engine(node: usize, seed: u64, incarnation: u64) -> Engine {
    let mut config = Config::new(WORKERS, ["work"]);
    config.node = Some(node_name(node));
    config.shared_store = true;
    let seed = seed ^ ((node as u64 + 1) << 40) ^ (incarnation << 20);
    Engine::new(config, Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)))
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        node: usize,
        subject: u8,
        attempts: u32,
    },
    Claim {
        node: usize,
    },
    Finish {
        node: usize,
        run: u8,
        ok: bool,
    },
    /// The node stops renewing: a live node sends `NodeLost` for it.
    Lose {
        node: usize,
        by: usize,
    },
    /// The lost node wakes up and joins again, reporting on the runs it had.
    Rejoin {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Tick {
        node: usize,
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        4 => (node.clone(), 0u8..4, 1u32..4).prop_map(|(node, subject, attempts)| Op::Enqueue { node, subject, attempts }),
        4 => node.clone().prop_map(|node| Op::Claim { node }),
        4 => (node.clone(), any::<u8>(), any::<bool>()).prop_map(|(node, run, ok)| Op::Finish { node, run, ok }),
        1 => (node.clone(), node.clone()).prop_map(|(node, by)| Op::Lose { node, by }),
        1 => node.clone().prop_map(|node| Op::Rejoin { node }),
        1 => node.clone().prop_map(|node| Op::Restart { node }),
        1 => (node, 1u64..5_000).prop_map(|(node, ms)| Op::Tick { node, ms }),
    ]
}

struct Cluster {
    store: MemStore,
    engines: Vec<Engine>,
    incarnations: Vec<u64>,
    now_ms: u64,
    seed: u64,
    /// Attempts each node's executor runs: (job, attempt).
    runs: Vec<BTreeSet<(JobId, u32)>>,
    /// Nodes whose lease the others judged expired; they take no input until they rejoin.
    lost: BTreeSet<usize>,
    /// Attempts ended by `NodeLost`, whose reports must change nothing.
    fenced: BTreeSet<(JobId, u32)>,
    terminal: BTreeMap<JobId, Job>,
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        let mut cluster = Cluster {
            store: MemStore::new(),
            engines: (0..NODES).map(|node| engine(node, seed, 0)).collect(),
            incarnations: vec![0; NODES],
            now_ms: START_MS,
            seed,
            runs: vec![BTreeSet::new(); NODES],
            lost: BTreeSet::new(),
            fenced: BTreeSet::new(),
            terminal: BTreeMap::new(),
        };
        for node in 0..NODES {
            let _ = cluster.step(node, Input::Recover);
        }
        cluster
    }

    fn jobs(&self) -> Vec<Job> {
        let query = semantica_core::JobQuery { limit: 200, ..Default::default() };
        self.store.query(&query).expect("memstore").items
    }

    fn step(&mut self, node: usize, input: Input) -> semantica_core::Step {
        let step = self.engines[node].run(self.now_ms, input, &mut self.store).expect("memstore");
        for action in &step.actions {
            if let semantica_core::Action::Spawn(job) = action {
                assert_eq!(job.node, Some(node_name(node)), "a claim records its engine's node");
                self.runs[node].insert((job.id, job.attempts));
            }
        }
        self.check();
        step
    }

    fn check(&mut self) {
        let jobs = self.jobs();
        let mut occupied: BTreeMap<&str, usize> = BTreeMap::new();
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &jobs {
            if job.occupies_subject() {
                *occupied.entry(&job.subject_key).or_default() += 1;
                let node = job.node.as_deref().expect("an occupying job names its node");
                *per_node.entry(node).or_default() += 1;
            }
            if let Some(before) = self.terminal.get(&job.id) {
                assert_eq!((before.state, &before.error), (job.state, &job.error), "job {} left its end", job.id);
            } else if job.state.is_terminal() {
                self.terminal.insert(job.id, job.clone());
            }
        }
        for (subject, count) in occupied {
            assert!(count <= 1, "subject {subject} occupied by {count} jobs at once");
        }
        for (node, count) in per_node {
            assert!(count <= WORKERS, "node {node} holds {count} workers, more than {WORKERS}");
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Enqueue { node, subject, attempts } => {
                if self.lost.contains(&node) {
                    return;
                }
                let request = EnqueueRequest {
                    job_type: Some("work".into()),
                    queue: Some("default".into()),
                    subject_key: Some(format!("s{subject}")),
                    max_attempts: Some(i64::from(attempts)),
                    ..EnqueueRequest::default()
                };
                let step = self.step(node, Input::Enqueue(Box::new(request)));
                assert!(matches!(step.reply, Reply::Enqueued(_)), "{:?}", step.reply);
            }
            Op::Claim { node } => {
                if !self.lost.contains(&node) {
                    let _ = self.step(node, Input::ClaimBatch { queue: None, max: WORKERS });
                }
            }
            Op::Finish { node, run, ok } => {
                let runs: Vec<(JobId, u32)> = self.runs[node].iter().copied().collect();
                let Some(&(job_id, attempt)) = runs.get(usize::from(run) % runs.len().max(1)) else { return };
                if self.lost.contains(&node) {
                    return; // frozen: it reports when it rejoins
                }
                self.runs[node].remove(&(job_id, attempt));
                self.report(node, job_id, attempt, ok);
            }
            Op::Lose { node, by } => {
                if by == node || self.lost.contains(&by) || self.lost.contains(&node) {
                    return;
                }
                self.lost.insert(node);
                let running: Vec<Job> = self
                    .jobs()
                    .into_iter()
                    .filter(|job| job.state == JobState::Running && job.node == Some(node_name(node)))
                    .collect();
                loop {
                    let step = self.step(by, Input::NodeLost { node: node_name(node) });
                    let Reply::NodeLost { more, .. } = step.reply else { panic!("{:?}", step.reply) };
                    if !more {
                        break;
                    }
                }
                let lost = self.store.jobs_of_node(&node_name(node), usize::MAX).expect("memstore");
                assert!(lost.is_empty(), "a lost node still holds {} workers", lost.len());
                for before in running {
                    let after = self.store.get(before.id).expect("memstore").expect("not purged");
                    assert_eq!(after.error.as_ref().map(|e| e.kind), Some(ErrorKind::NodeLost), "{after:?}");
                    assert!(after.attempts == before.attempts && after.state != JobState::Running);
                    self.fenced.insert((before.id, before.attempts));
                }
            }
            Op::Rejoin { node } => {
                if !self.lost.remove(&node) {
                    return;
                }
                // Its late reports, on attempts the others already ended: each changes nothing.
                let runs = std::mem::take(&mut self.runs[node]);
                for (job_id, attempt) in runs {
                    self.report(node, job_id, attempt, true);
                }
            }
            Op::Restart { node } => {
                if self.lost.contains(&node) {
                    return;
                }
                self.incarnations[node] += 1;
                self.engines[node] = engine(node, self.seed, self.incarnations[node]);
                self.runs[node].clear();
                let others: Vec<Job> = self
                    .jobs()
                    .into_iter()
                    .filter(|job| job.occupies_subject() && job.node != Some(node_name(node)))
                    .collect();
                let _ = self.step(node, Input::Recover);
                for before in others {
                    let after = self.store.get(before.id).expect("memstore");
                    assert_eq!(after.as_ref(), Some(&before), "a restart touched another node's job");
                }
            }
            Op::Tick { node, ms } => {
                self.now_ms += ms;
                if !self.lost.contains(&node) {
                    let _ = self.step(node, Input::Tick);
                }
            }
        }
    }

    fn report(&mut self, node: usize, job_id: JobId, attempt: u32, ok: bool) {
        let outcome = if ok {
            Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: Vec::new() }
        } else {
            Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(1), message: "exit 1".into() }
        };
        let before = self.store.get(job_id).expect("memstore");
        let step = self.step(node, Input::Report(Report::Finished { job_id, attempt, outcome }));
        if self.fenced.contains(&(job_id, attempt)) {
            assert_eq!(step.reply, Reply::Ignored, "a late report of a lost attempt was taken");
            assert!(step.persist.is_empty(), "a late report of a lost attempt wrote");
            assert_eq!(self.store.get(job_id).expect("memstore"), before);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lost_nodes_are_fenced_and_nodes_keep_to_their_own(seed: u64, ops in prop::collection::vec(op(), 1..120)) {
        let mut cluster = Cluster::new(seed);
        for op in ops {
            cluster.apply(op);
        }
    }
}

#[test]
fn a_late_report_of_a_lost_attempt_changes_nothing() {
    let mut cluster = Cluster::new(7);
    cluster.apply(Op::Enqueue { node: 0, subject: 0, attempts: 2 });
    cluster.apply(Op::Claim { node: 0 });
    let (job_id, attempt) = *cluster.runs[0].iter().next().expect("node 0 started the job");
    cluster.apply(Op::Lose { node: 0, by: 1 });
    let job = cluster.store.get(job_id).unwrap().unwrap();
    assert_eq!((job.state, job.error.map(|e| e.kind)), (JobState::Scheduled, Some(ErrorKind::NodeLost)));
    cluster.apply(Op::Tick { node: 1, ms: 60_000 });
    cluster.apply(Op::Claim { node: 1 });
    let job = cluster.store.get(job_id).unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.node.as_deref()), (JobState::Running, attempt + 1, Some("node-1")));
    // Node 0 wakes up and reports success on its lost attempt: nothing changes.
    cluster.apply(Op::Rejoin { node: 0 });
    assert_eq!(cluster.store.get(job_id).unwrap().unwrap(), job);
}

#[test]
fn a_restart_leaves_another_nodes_running_jobs_alone() {
    let mut cluster = Cluster::new(11);
    cluster.apply(Op::Enqueue { node: 1, subject: 1, attempts: 1 });
    cluster.apply(Op::Claim { node: 1 });
    cluster.apply(Op::Enqueue { node: 0, subject: 2, attempts: 1 });
    cluster.apply(Op::Claim { node: 0 });
    let jobs = cluster.jobs();
    assert_eq!(jobs.iter().filter(|job| job.state == JobState::Running).count(), 2);
    cluster.apply(Op::Restart { node: 0 });
    let jobs = cluster.jobs();
    let running: Vec<_> = jobs.iter().filter(|job| job.state == JobState::Running).collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].node.as_deref(), Some("node-1"));
    let failed = jobs.iter().find(|job| job.subject_key == "s2").unwrap();
    assert_eq!(failed.error.as_ref().map(|e| e.kind), Some(ErrorKind::DaemonRestart));
}

#[test]
fn worker_limits_count_only_the_engines_own_node() {
    let mut cluster = Cluster::new(3);
    for subject in 0..4 {
        cluster.apply(Op::Enqueue { node: 0, subject, attempts: 1 });
    }
    cluster.apply(Op::Claim { node: 0 });
    cluster.apply(Op::Claim { node: 1 });
    let jobs = cluster.jobs();
    let on = |node: &str| jobs.iter().filter(|job| job.node.as_deref() == Some(node)).count();
    assert_eq!((on("node-0"), on("node-1")), (WORKERS, WORKERS));
}
