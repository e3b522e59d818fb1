//! The simulated executor: takes `Spawn` and `Kill` actions and answers, later in
//! simulated time, with `Report::Started` and `Report::Finished`.
//!
//! A run succeeds, fails with an exit code, dies by a signal, fails to spawn, reports its
//! own timeout, or hangs until it is killed (only when a timeout or deadline will kill
//! it, so that the liveness phase can end). Faults: a report delivered late, or twice.

use std::collections::BTreeMap;

use semantica_core::{ErrorKind, Job, JobId, KillOrder, Outcome, Report, SplitMix64};

/// Longest natural run of a process.
const RUN_MS_MAX: u64 = 3_000;
/// Longest time a process takes to die after a kill.
const KILL_MS_MAX: u64 = 50;
/// Longest time between spawn and `Started`.
const START_MS_MAX: u64 = 20;
/// Reports waiting for delivery; more means the driver stopped delivering.
const OUTBOX_MAX: usize = 100_000;

/// Fault rates of the executor, per mille of reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ExecutorFaults {
    pub late_per_mille: u64,
    pub late_ms_max: u64,
    pub duplicate_per_mille: u64,
}

/// A live simulated process.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Process {
    pub job_id: JobId,
    pub attempt: u32,
    pub subject_key: String,
    pub queue: String,
    pub pid: u32,
    /// When the process dies (its `Finished` is queued then); `None` = hangs until killed.
    pub ends_at_ms: Option<u64>,
    killed: bool,
}

#[derive(Clone, Debug)]
struct Pending {
    report: Report,
    /// The process this report is about.
    process: Option<(JobId, u32)>,
    /// Delivering it ends the process (the first copy of a `Finished`; not a duplicate).
    ends: bool,
}

#[derive(Clone, Debug)]
pub struct SimExecutor {
    rng: SplitMix64,
    faults: ExecutorFaults,
    processes: BTreeMap<(JobId, u32), Process>,
    /// Reports by (due time, sequence): the sequence breaks ties in send order.
    outbox: BTreeMap<(u64, u64), Pending>,
    outbox_seq: u64,
    next_pid: u32,
    /// Things the engine asked for that no correct engine would (a kill of a stranger's pid).
    pub anomalies: Vec<String>,
}

impl SimExecutor {
    pub fn new(seed: u64, faults: ExecutorFaults) -> SimExecutor {
        SimExecutor {
            rng: SplitMix64::new(seed),
            faults,
            processes: BTreeMap::new(),
            outbox: BTreeMap::new(),
            outbox_seq: 0,
            next_pid: 1_000,
            anomalies: Vec::new(),
        }
    }

    pub fn set_faults(&mut self, faults: ExecutorFaults) {
        self.faults = faults;
    }

    /// The daemon died: its processes die with it and undelivered reports are lost.
    pub fn crash(&mut self) {
        self.processes.clear();
        self.outbox.clear();
    }

    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    pub fn is_idle(&self) -> bool {
        self.processes.is_empty() && self.outbox.is_empty()
    }

    pub fn next_report_at_ms(&self) -> Option<u64> {
        self.outbox.keys().next().map(|(at, _)| *at)
    }

    pub fn spawn(&mut self, now_ms: u64, job: &Job) {
        let key = (job.id, job.attempts);
        assert!(!self.processes.contains_key(&key), "job {} attempt {} spawned twice", job.id, job.attempts);
        let roll = self.rng.below(100);
        if roll < 4 {
            let outcome = Outcome::Failed {
                kind: ErrorKind::SpawnFailed,
                exit_code: None,
                message: "simulated spawn failure".to_owned(),
            };
            let report = Report::Finished { job_id: job.id, attempt: job.attempts, outcome };
            self.send(now_ms + 1, report, None);
            return;
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let started_at_ms = now_ms + self.rng.below(START_MS_MAX + 1);
        let started = Report::Started {
            job_id: job.id,
            attempt: job.attempts,
            pid: Some(pid),
            pid_started_at: Some(started_at_ms),
        };
        self.send(started_at_ms, started, None);
        let run_ms = 1 + self.rng.below(RUN_MS_MAX);
        let can_hang = job.timeout_ms.is_some() || job.deadline_ms.is_some();
        let (ends_at_ms, outcome) = match roll {
            4..=59 => (Some(started_at_ms + run_ms), Some(succeeded())),
            60..=74 => {
                let exit_code = 1 + self.rng.below(255) as i32;
                let outcome = Outcome::Failed {
                    kind: ErrorKind::ExitCode,
                    exit_code: Some(exit_code),
                    message: format!("exit code {exit_code}"),
                };
                (Some(started_at_ms + run_ms), Some(outcome))
            }
            75..=82 => {
                let outcome =
                    Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "killed by signal 9".into() };
                (Some(started_at_ms + run_ms), Some(outcome))
            }
            83..=91 if can_hang => (None, None),
            83..=99 => match job.timeout_ms {
                // The executor enforces the timeout itself, racing the engine's own timer.
                Some(timeout_ms) => (Some(started_at_ms + timeout_ms + self.rng.below(5)), Some(Outcome::TimedOut)),
                None => (Some(started_at_ms + run_ms * 10), Some(succeeded())),
            },
            _ => unreachable!("roll is below 100"),
        };
        if let (Some(at_ms), Some(outcome)) = (ends_at_ms, outcome) {
            let report = Report::Finished { job_id: job.id, attempt: job.attempts, outcome };
            self.send(at_ms, report, Some(key));
        }
        let process = Process {
            job_id: job.id,
            attempt: job.attempts,
            subject_key: job.subject_key.clone(),
            queue: job.queue.clone(),
            pid,
            ends_at_ms,
            killed: false,
        };
        self.processes.insert(key, process);
    }

    /// Kills the process of the order's attempt if it still lives; it dies shortly after.
    pub fn kill(&mut self, now_ms: u64, order: &KillOrder) {
        let key = (order.job_id, order.attempt);
        let Some(process) = self.processes.get_mut(&key) else { return };
        if process.killed {
            return;
        }
        if order.pid.is_some_and(|pid| pid != process.pid) {
            self.anomalies.push(format!(
                "kill order for job {} attempt {} names pid {:?}, but its process is pid {}",
                order.job_id, order.attempt, order.pid, process.pid
            ));
            return;
        }
        process.killed = true;
        let dies_at_ms = now_ms + 1 + self.rng.below(KILL_MS_MAX);
        if process.ends_at_ms.is_some_and(|at| at <= dies_at_ms) {
            return; // it ends on its own first
        }
        process.ends_at_ms = Some(dies_at_ms);
        // Drop its natural end, duplicates included: the kill decides how it ends.
        self.outbox
            .retain(|_, pending| !(pending.process == Some(key) && matches!(pending.report, Report::Finished { .. })));
        let outcome = Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "killed".to_owned() };
        let report = Report::Finished { job_id: order.job_id, attempt: order.attempt, outcome };
        self.send(dies_at_ms, report, Some(key));
    }

    /// The next report due at `now_ms`, if any. A process whose end is due dies now.
    pub fn poll_report(&mut self, now_ms: u64) -> Option<Report> {
        let (&key, _) = self.outbox.iter().next().filter(|((at, _), _)| *at <= now_ms)?;
        let pending = self.outbox.remove(&key).expect("just seen");
        if let (true, Some(process_key)) = (pending.ends, pending.process) {
            self.processes.remove(&process_key);
        }
        Some(pending.report)
    }

    /// A report whose delivery failed (the engine's commit failed): deliver it again later.
    pub fn redeliver(&mut self, now_ms: u64, report: Report) {
        let at_ms = now_ms + 1 + self.rng.below(200);
        self.push(at_ms, Pending { report, process: None, ends: false });
    }

    fn send(&mut self, at_ms: u64, report: Report, ends: Option<(JobId, u32)>) {
        let late = self.faults.late_per_mille > 0 && self.rng.chance(self.faults.late_per_mille, 1000);
        let duplicate = self.faults.duplicate_per_mille > 0 && self.rng.chance(self.faults.duplicate_per_mille, 1000);
        // A late report arrives after its time; until then the process counts as alive.
        let delivered_at_ms = if late { at_ms + 1 + self.rng.below(self.faults.late_ms_max.max(1)) } else { at_ms };
        if duplicate {
            // The same message once more, after the first delivery.
            let again_at_ms = delivered_at_ms + 1 + self.rng.below(5_000);
            self.push(again_at_ms, Pending { report: report.clone(), process: ends, ends: false });
        }
        self.push(delivered_at_ms, Pending { report, process: ends, ends: ends.is_some() });
    }

    fn push(&mut self, at_ms: u64, pending: Pending) {
        assert!(self.outbox.len() < OUTBOX_MAX, "executor outbox over its limit");
        self.outbox_seq += 1;
        self.outbox.insert((at_ms, self.outbox_seq), pending);
    }
}

fn succeeded() -> Outcome {
    Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semantica_core::JobState;

    fn job_with_timeout() -> Job {
        Job {
            subject_key: "s".to_owned(),
            state: JobState::Running,
            attempts: 1,
            timeout_ms: Some(10_000),
            trace_id: "t".to_owned(),
            started_at_ms: Some(0),
            ..Job::blank(JobId::from_u128(7))
        }
    }

    /// Found as SEED=2000212 (--steps 5000): a kill replaced a run's natural end, but a
    /// duplicate of that natural end stayed queued and reached the engine while the
    /// process still lived, so the engine freed the subject too early. Every report about a
    /// process must follow its death; this drives the executor through many kills with
    /// heavy duplication and lateness and checks that.
    #[test]
    fn regression_duplicate_of_a_replaced_end_outlived_the_kill() {
        let faults = ExecutorFaults { late_per_mille: 500, late_ms_max: 5_000, duplicate_per_mille: 500 };
        for seed in 0..200 {
            let mut executor = SimExecutor::new(seed, faults);
            let job = job_with_timeout();
            executor.spawn(0, &job);
            let order = KillOrder { job_id: job.id, attempt: 1, pid: None, pid_started_at: None };
            executor.kill(5, &order);
            let mut now_ms = 0;
            while let Some(at_ms) = executor.next_report_at_ms() {
                now_ms = now_ms.max(at_ms);
                let alive_before = executor.processes().count();
                if let Some(Report::Finished { .. }) = executor.poll_report(now_ms) {
                    assert!(
                        alive_before == 1 && executor.processes().count() == 0 || alive_before == 0,
                        "seed {seed}: a Finished report arrived while its process lived on"
                    );
                }
            }
        }
    }
}
