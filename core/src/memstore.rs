//! The reference store: the [`Store`] contract in its plainest form, in memory.
//!
//! It favours being obviously right over being fast: lists come from scans of the
//! active jobs (there are few of them; finished ones pile up). The simulator and the
//! property tests run the engine on it, and other stores are checked against it.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::JobId;
use crate::job::{Job, JobState};
use crate::store::{JobPage, JobQuery, QueueStats, Recurring, Store, StoreError, StoreResult, Write, WriteSet};

#[derive(Clone, Debug, Default)]
pub struct MemStore {
    jobs: BTreeMap<JobId, Job>,
    by_seq: BTreeMap<u64, JobId>,
    /// Non-terminal or `reap_pending` jobs.
    active: BTreeSet<JobId>,
    max_generation: BTreeMap<String, u64>,
    max_seq: u64,
    paused: BTreeSet<String>,
    recurring: BTreeMap<String, Recurring>,
}

fn is_active(job: &Job) -> bool {
    !job.state.is_terminal() || job.reap_pending
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Every job, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        // by seq, so every list comes out in enqueue order
        let mut jobs: Vec<&Job> = self.active.iter().map(|id| &self.jobs[id]).collect();
        jobs.sort_by_key(|job| job.seq);
        jobs.into_iter()
    }

    fn list(&self, limit: usize, keep: impl Fn(&Job) -> bool) -> Vec<Job> {
        self.active_jobs().filter(|job| keep(job)).take(limit).cloned().collect()
    }

    fn check(&self, write: &Write) -> StoreResult<()> {
        let conflict = |job_id: JobId, detail: &str| Err(StoreError::Conflict { job_id, detail: detail.to_owned() });
        match write {
            Write::Insert(job) => {
                if self.jobs.contains_key(&job.id) {
                    return conflict(job.id, "id exists");
                }
                if job.seq <= self.max_seq {
                    return conflict(job.id, "sequence not above the highest");
                }
            }
            Write::Update(job) => match self.jobs.get(&job.id) {
                Some(stored) if stored.version + 1 == job.version => {}
                Some(_) => return conflict(job.id, "version changed since it was read"),
                None => return conflict(job.id, "job no longer exists"),
            },
            Write::Delete { id, version } => match self.jobs.get(id) {
                Some(stored) if stored.version == *version => {}
                _ => return conflict(*id, "version changed since it was read"),
            },
            Write::QueuePaused { .. }
            | Write::PutRecurring(_)
            | Write::DeleteRecurring { .. }
            | Write::NodeLeaseExpired { .. } => {}
        }
        Ok(())
    }

    fn apply(&mut self, write: &Write) {
        match write {
            Write::Insert(job) | Write::Update(job) => {
                let max = self.max_generation.entry(job.subject_key.clone()).or_insert(job.generation);
                *max = (*max).max(job.generation);
                self.max_seq = self.max_seq.max(job.seq);
                self.by_seq.insert(job.seq, job.id);
                if is_active(job) {
                    self.active.insert(job.id);
                } else {
                    self.active.remove(&job.id);
                }
                self.jobs.insert(job.id, job.clone());
            }
            Write::Delete { id, .. } => {
                let job = self.jobs.remove(id).expect("checked");
                self.by_seq.remove(&job.seq);
                self.active.remove(id);
            }
            Write::QueuePaused { queue, paused: true } => {
                self.paused.insert(queue.clone());
            }
            Write::QueuePaused { queue, paused: false } => {
                self.paused.remove(queue);
            }
            Write::PutRecurring(recurring) => {
                self.recurring.insert(recurring.name.clone(), recurring.clone());
            }
            Write::DeleteRecurring { name } => {
                self.recurring.remove(name);
            }
            Write::NodeLeaseExpired { .. } => {} // no leases here: every node counts as expired
        }
    }
}

impl Store for MemStore {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        Ok(self.jobs.get(&id).cloned())
    }

    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        Ok(self.max_generation.get(subject_key).copied())
    }

    fn max_seq(&self) -> StoreResult<u64> {
        Ok(self.max_seq)
    }

    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        Ok(self.list(usize::MAX, |job| job.subject_key == subject_key))
    }

    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        Ok(self
            .list(usize::MAX, |job| job.subject_key == subject_key && job.occupies_subject())
            .iter()
            .map(|job| job.id)
            .collect())
    }

    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let occupied: BTreeSet<&str> =
            self.active_jobs().filter(|job| job.occupies_subject()).map(|job| job.subject_key.as_str()).collect();
        let mut jobs: Vec<Job> = self.list(usize::MAX, |job| {
            job.state == JobState::Queued
                && job.queue == queue
                && min_priority.is_none_or(|floor| job.priority >= floor)
                && after.is_none_or(|(priority, seq)| {
                    job.priority < priority || (job.priority == priority && job.seq > seq)
                })
                && !occupied.contains(job.subject_key.as_str())
        });
        jobs.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.seq));
        jobs.truncate(limit);
        Ok(jobs)
    }

    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        let queues: BTreeSet<String> =
            self.active_jobs().filter(|job| job.state == JobState::Queued).map(|job| job.queue.clone()).collect();
        Ok(queues.into_iter().collect())
    }

    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        Ok(self.active_jobs().filter(|job| job.occupies_subject() && queue.is_none_or(|q| q == job.queue)).count())
    }

    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        let mut jobs = self.list(usize::MAX, |job| job.wake_at_ms.is_some_and(|wake| wake <= now_ms));
        jobs.sort_by_key(|job| (job.wake_at_ms, job.seq));
        jobs.truncate(limit);
        Ok(jobs)
    }

    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| job.wall_offset_ms.is_some_and(|placed_ms| placed_ms != offset_ms)))
    }

    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| {
            !job.state.is_terminal()
                && tag.is_none_or(|t| job.tag.as_deref() == Some(t))
                && chain_group_id.is_none_or(|g| job.chain_group_id.as_deref() == Some(g))
        }))
    }

    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| !job.state.is_terminal() && job.parent_job_id == Some(parent)))
    }

    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| {
            job.state.is_waiting() && !job.event_released && job.conditions.wait_for_event.as_deref() == Some(name)
        }))
    }

    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| job.state.is_waiting() && job.conditions.needs_system()))
    }

    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, Job::occupies_subject))
    }

    fn jobs_of_node(&self, node: &str, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self.list(limit, |job| job.occupies_subject() && job.node.as_deref() == Some(node)))
    }

    fn node_process_count(&self, queue: Option<&str>, node: &str) -> StoreResult<usize> {
        let in_scope = |job: &&Job| {
            job.occupies_subject() && queue.is_none_or(|q| q == job.queue) && job.node.as_deref() == Some(node)
        };
        Ok(self.active_jobs().filter(in_scope).count())
    }

    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        Ok(self
            .by_seq
            .values()
            .map(|id| &self.jobs[id])
            .filter(|job| {
                job.state.is_terminal()
                    && !job.reap_pending
                    && job.finished_at_ms.is_some_and(|t| t < finished_before_ms)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        assert!((1..=JobQuery::LIMIT_MAX).contains(&query.limit));
        let ordered: Box<dyn Iterator<Item = &JobId>> =
            if query.descending { Box::new(self.by_seq.values().rev()) } else { Box::new(self.by_seq.values()) };
        let mut matching = ordered.map(|id| &self.jobs[id]).filter(|job| query.matches(job));
        let mut items: Vec<Job> = Vec::new();
        let mut bytes = 0;
        while items.len() < query.limit && !query.full_by_bytes(items.len(), bytes) {
            let Some(job) = matching.next() else { break };
            bytes += job.data_bytes();
            items.push(job.clone());
        }
        let more = matching.next().is_some();
        let next_after_seq = if more { items.last().map(|job| job.seq) } else { None };
        Ok(JobPage { items, next_after_seq })
    }

    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        let mut stats: BTreeMap<&str, (QueueStats, u64, u64)> = BTreeMap::new();
        for job in self.jobs.values() {
            let entry = stats
                .entry(&job.queue)
                .or_insert_with(|| (QueueStats { queue: job.queue.clone(), ..QueueStats::default() }, 0, 0));
            entry.0.counts[job.state as usize] += 1;
            if job.state == JobState::Queued {
                let oldest = entry.0.oldest_queued_due_ms.get_or_insert(job.due_at_ms);
                *oldest = (*oldest).min(job.due_at_ms);
            }
            if let Some(started) = job.started_at_ms {
                entry.1 += started.saturating_sub(job.due_at_ms);
                entry.2 += 1;
            }
        }
        Ok(stats
            .into_values()
            .map(|(mut queue, wait_sum, started)| {
                queue.avg_wait_ms = (started > 0).then(|| wait_sum / started);
                queue
            })
            .collect())
    }

    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        Ok(self.paused.iter().cloned().collect())
    }

    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        Ok(self.recurring.get(name).cloned())
    }

    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        Ok(self.recurring.values().cloned().collect())
    }

    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        let mut due: Vec<Recurring> =
            self.recurring.values().filter(|r| r.next_at_ms.is_some_and(|at| at <= now_ms)).cloned().collect();
        due.sort_by(|a, b| (a.next_at_ms, &a.name).cmp(&(b.next_at_ms, &b.name)));
        due.truncate(limit);
        Ok(due)
    }

    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        // Check all, then apply all: a refused set leaves no trace. The engine writes each
        // job at most once per set and never moves a job's seq; anything else is a bug
        // in the caller, not a conflict.
        let mut touched = BTreeSet::new();
        let mut seqs = BTreeSet::new();
        for write in &writes.writes {
            let id = match write {
                Write::QueuePaused { .. }
                | Write::PutRecurring(_)
                | Write::DeleteRecurring { .. }
                | Write::NodeLeaseExpired { .. } => continue,
                Write::Insert(job) => {
                    assert!(seqs.insert(job.seq), "seq {} inserted twice in one write set", job.seq);
                    job.id
                }
                Write::Update(job) => {
                    if let Some(stored) = self.jobs.get(&job.id) {
                        assert_eq!(stored.seq, job.seq, "job {}: an update must not move seq", job.id);
                    }
                    job.id
                }
                Write::Delete { id, .. } => *id,
            };
            assert!(touched.insert(id), "job {id} written twice in one write set");
            self.check(write)?;
        }
        for write in &writes.writes {
            self.apply(write);
        }
        Ok(())
    }
}
