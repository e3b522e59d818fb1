//! Deliberately broken stores, to prove that the simulator catches a broken backend end
//! to end (mutation testing of the simulator itself). Never use them for anything else.

use semantica_core::{
    Job, JobId, JobPage, JobQuery, MemStore, QueueStats, Recurring, Store, StoreResult, Write, WriteSet,
};

use crate::backend::Backend;

/// How the store is broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// Says a commit succeeded but forgets every n-th one.
    LoseCommits { every: u64 },
    /// Offers claim candidates in enqueue order, ignoring priority.
    IgnorePriority,
    /// Applies updates but drops every n-th write set's state changes to terminal jobs.
    ForgetCancels { every: u64 },
    /// Never lists a recurring job as due (nor its next slot as a wake-up).
    HideDueRecurring,
    /// Loses every pause when the store is reopened after a crash.
    ForgetPausesOnReopen,
}

pub struct MutantStore {
    inner: MemStore,
    mutation: Mutation,
    commits: u64,
}

impl MutantStore {
    pub fn new(mutation: Mutation) -> MutantStore {
        MutantStore { inner: MemStore::new(), mutation, commits: 0 }
    }
}

pub fn losing_commits() -> Box<dyn Backend> {
    Box::new(MutantStore::new(Mutation::LoseCommits { every: 25 }))
}

pub fn ignoring_priority() -> Box<dyn Backend> {
    Box::new(MutantStore::new(Mutation::IgnorePriority))
}

pub fn forgetting_cancels() -> Box<dyn Backend> {
    Box::new(MutantStore::new(Mutation::ForgetCancels { every: 3 }))
}

pub fn hiding_due_recurring() -> Box<dyn Backend> {
    Box::new(MutantStore::new(Mutation::HideDueRecurring))
}

pub fn forgetting_pauses_on_reopen() -> Box<dyn Backend> {
    Box::new(MutantStore::new(Mutation::ForgetPausesOnReopen))
}

impl Backend for MutantStore {
    fn name(&self) -> &'static str {
        "mutant"
    }

    fn reopen(&mut self) -> StoreResult<()> {
        if self.mutation == Mutation::ForgetPausesOnReopen {
            let resumes =
                self.inner.paused_queues()?.into_iter().map(|queue| Write::QueuePaused { queue, paused: false });
            self.inner.commit(&WriteSet { writes: resumes.collect() })?;
        }
        Ok(())
    }
}

impl Store for MutantStore {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.inner.get(id)
    }
    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        self.inner.max_generation(subject_key)
    }
    fn max_seq(&self) -> StoreResult<u64> {
        self.inner.max_seq()
    }
    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        self.inner.active_jobs_of_subject(subject_key)
    }
    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        self.inner.occupying_job_ids(subject_key)
    }
    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let mut jobs;
        if self.mutation == Mutation::IgnorePriority {
            // In seq order, continued after the seq of the last one listed.
            jobs = self.inner.claim_candidates(queue, min_priority, None, usize::MAX)?;
            jobs.sort_by_key(|job| job.seq);
            jobs.retain(|job| after.is_none_or(|(_, seq)| job.seq > seq));
        } else {
            jobs = self.inner.claim_candidates(queue, min_priority, after, usize::MAX)?;
        }
        jobs.truncate(limit);
        Ok(jobs)
    }
    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        self.inner.ready_queues()
    }
    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        self.inner.process_count(queue)
    }
    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.due_jobs(now_ms, limit)
    }
    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.wall_timed_jobs(offset_ms, limit)
    }
    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.labelled_jobs(tag, chain_group_id, limit)
    }
    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.waiting_children(parent, limit)
    }
    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.event_waiters(name, limit)
    }
    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.system_waiters(limit)
    }
    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.process_holders(limit)
    }
    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.inner.purgeable(finished_before_ms, limit)
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
    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        self.inner.recurring(name)
    }
    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        self.inner.recurring_list()
    }
    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        if self.mutation == Mutation::HideDueRecurring {
            return Ok(Vec::new());
        }
        self.inner.recurring_due(now_ms, limit)
    }
    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        self.commits += 1;
        match self.mutation {
            Mutation::LoseCommits { every } if self.commits % every == 0 => Ok(()),
            Mutation::ForgetCancels { every } if self.commits % every == 0 => {
                let kept: Vec<Write> = writes
                    .writes
                    .iter()
                    .filter(|write| !matches!(write, Write::Update(job) if job.state == semantica_core::JobState::Cancelled))
                    .cloned()
                    .collect();
                self.inner.commit(&WriteSet { writes: kept })
            }
            _ => self.inner.commit(writes),
        }
    }
}
