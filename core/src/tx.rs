//! One engine step's view of the store: the store as it was, overlaid with the writes the
//! step has decided so far. Every read of the engine goes through here, so a later rule
//! of the same step sees the earlier ones' writes; nothing reaches the store until the
//! driver commits the step's [`WriteSet`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Action;
use crate::id::JobId;
use crate::job::{Job, JobState};
use crate::ports::KillOrder;
use crate::store::{Recurring, Store, StoreResult, Write, WriteSet};

pub(crate) struct Tx<'s> {
    store: &'s dyn Store,
    pub now_ms: u64,
    /// The latest version of every job this step wrote.
    changed: BTreeMap<JobId, Job>,
    /// The store's version of each changed job; `None` when the step inserted it.
    originals: BTreeMap<JobId, Option<Job>>,
    deleted: BTreeSet<JobId>,
    /// The changed jobs of each subject: an enqueue asks about its subject, and a batch of
    /// a thousand must not look through every job the batch wrote each time.
    by_subject: BTreeMap<String, Vec<JobId>>,
    /// The changed jobs of each parent: every end asks for its waiting children, and a
    /// claim batch that ends hundreds of instant jobs must not look through every job the
    /// step wrote each time.
    by_parent: BTreeMap<JobId, Vec<JobId>>,
    /// The store's highest `seq`, read once per step (the store does not change under it).
    stored_max_seq: Option<u64>,
    /// The highest `seq` among the changed jobs.
    changed_max_seq: u64,
    touch_order: Vec<JobId>,
    /// Jobs read from the store in this step, as the store holds them: the store does not
    /// change under a step, so a job listed by one question and then read or updated is
    /// not fetched again.
    read: RefCell<BTreeMap<JobId, Job>>,
    /// The store's claim candidates per (queue, priority floor), as listed in this step.
    candidates: RefCell<BTreeMap<(String, Option<i32>), Listed>>,
    /// How this step's writes changed the jobs holding a worker slot, per (queue, node):
    /// `process_count` adds it to the store's count instead of walking the step's writes.
    occupancy_delta: BTreeMap<(String, Option<String>), i64>,
    /// Jobs this step left `QUEUED` (a child an instant job's end released): claim
    /// candidates that the store's list cannot hold, as the step changed them.
    queued_here: BTreeSet<JobId>,
    /// The store's answers to `ready_queues` and `process_count`, asked once per step
    /// (a claim batch asks before each of its claims).
    stored_ready_queues: RefCell<Option<Vec<String>>>,
    stored_process_counts: RefCell<BTreeMap<ProcessScope, usize>>,
    /// Queues this step paused (`true`) or resumed.
    paused: BTreeMap<String, bool>,
    /// Recurring jobs this step put (`Some`) or deleted (`None`).
    recurring: BTreeMap<String, Option<Recurring>>,
    /// Nodes whose expired lease this step's writes depend on (`Write::NodeLeaseExpired`).
    lost_nodes: BTreeSet<String>,
    pub actions: Vec<Action>,
    /// Something happened that may let a claim succeed now.
    pub may_claim: bool,
}

impl<'s> Tx<'s> {
    pub fn new(store: &'s dyn Store, now_ms: u64) -> Tx<'s> {
        Tx {
            store,
            now_ms,
            changed: BTreeMap::new(),
            originals: BTreeMap::new(),
            deleted: BTreeSet::new(),
            by_subject: BTreeMap::new(),
            by_parent: BTreeMap::new(),
            stored_max_seq: None,
            changed_max_seq: 0,
            touch_order: Vec::new(),
            read: RefCell::new(BTreeMap::new()),
            candidates: RefCell::new(BTreeMap::new()),
            queued_here: BTreeSet::new(),
            occupancy_delta: BTreeMap::new(),
            stored_ready_queues: RefCell::new(None),
            stored_process_counts: RefCell::new(BTreeMap::new()),
            paused: BTreeMap::new(),
            recurring: BTreeMap::new(),
            lost_nodes: BTreeSet::new(),
            actions: Vec::new(),
            may_claim: false,
        }
    }

    fn shadowed(&self, id: JobId) -> bool {
        self.changed.contains_key(&id) || self.deleted.contains(&id)
    }

    /// Store results not shadowed by this step, plus this step's jobs that satisfy
    /// `keep`, sorted by `order`.
    fn merge<K: Ord>(&self, from_store: Vec<Job>, keep: impl Fn(&Job) -> bool, order: impl Fn(&Job) -> K) -> Vec<Job> {
        let mut jobs = self.unshadowed(from_store);
        jobs.extend(self.changed.values().filter(|job| keep(job)).cloned());
        jobs.sort_by_key(|job| order(job));
        jobs
    }

    /// The store's jobs that this step has not changed, remembered as read.
    fn unshadowed(&self, from_store: Vec<Job>) -> Vec<Job> {
        let jobs: Vec<Job> = from_store.into_iter().filter(|job| !self.shadowed(job.id)).collect();
        self.unshadowed_read(jobs)
    }

    /// Remembers the store's jobs as read (they are as the store holds them).
    fn unshadowed_read(&self, jobs: Vec<Job>) -> Vec<Job> {
        let mut read = self.read.borrow_mut();
        for job in &jobs {
            read.entry(job.id).or_insert_with(|| job.clone());
        }
        jobs
    }

    /// The store's version of a job, read at most once per step.
    fn stored(&self, id: JobId) -> StoreResult<Option<Job>> {
        if let Some(job) = self.read.borrow().get(&id) {
            return Ok(Some(job.clone()));
        }
        let job = self.store.get(id)?;
        if let Some(job) = &job {
            assert_eq!(job.id, id, "the store answered job {} for {id}", job.id);
            self.read.borrow_mut().insert(id, job.clone());
        }
        Ok(job)
    }

    pub fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        if self.deleted.contains(&id) {
            return Ok(None);
        }
        match self.changed.get(&id) {
            Some(job) => Ok(Some(job.clone())),
            None => self.stored(id),
        }
    }

    /// A job as this step last wrote it (not cloned); `None` if the step has not written it.
    pub fn written(&self, id: JobId) -> Option<&Job> {
        self.changed.get(&id)
    }

    /// This step's jobs of a subject.
    fn changed_of_subject<'a>(&'a self, subject_key: &str) -> impl Iterator<Item = &'a Job> + 'a {
        let ids = self.by_subject.get(subject_key).map_or(&[][..], Vec::as_slice);
        ids.iter().map(|id| &self.changed[id])
    }

    pub fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        let stored = self.store.max_generation(subject_key)?;
        let ours = self.changed_of_subject(subject_key).map(|job| job.generation).max();
        Ok(stored.max(ours))
    }

    pub fn max_seq(&mut self) -> StoreResult<u64> {
        let stored = match self.stored_max_seq {
            Some(stored) => stored,
            None => *self.stored_max_seq.insert(self.store.max_seq()?),
        };
        Ok(stored.max(self.changed_max_seq))
    }

    pub fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        let stored = self.store.active_jobs_of_subject(subject_key)?;
        let mut jobs = self.unshadowed(stored);
        jobs.extend(self.changed_of_subject(subject_key).filter(|job| is_active(job)).cloned());
        jobs.sort_by_key(|job| job.seq);
        Ok(jobs)
    }

    pub fn subject_occupied(&self, subject_key: &str) -> StoreResult<bool> {
        // A stored occupant this step has written is judged by what it wrote.
        let stored = self.store.occupying_job_ids(subject_key)?;
        Ok(stored.iter().any(|id| !self.shadowed(*id))
            || self.changed_of_subject(subject_key).any(Job::occupies_subject))
    }

    /// The ids of up to `limit` candidates as the store sees them (the jobs are then in
    /// the step's reads), minus those this step touched (their state in the store is no
    /// longer current), plus the jobs this step made QUEUED. The store's list is kept for
    /// the step and continued, from its last job on, only when the jobs that earlier
    /// claims of the same step started or moved on leave fewer than `limit`: a batch of n
    /// claims reads each candidate once, not n times. The first time, it asks for at least
    /// `prefetch` (what the step means to start); each later time for as many as it holds.
    /// `true` when the store had no more.
    pub fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        limit: usize,
        prefetch: usize,
    ) -> StoreResult<(Vec<JobId>, bool)> {
        let key = (queue.to_owned(), min_priority);
        let mut candidates = self.candidates.borrow_mut();
        let listed = candidates.entry(key).or_default();
        loop {
            // Once touched, a job stays shadowed for the step: the list's touched head is
            // skipped for good, so that a batch's claims do not walk it again each time.
            while listed.ids.get(listed.start).is_some_and(|id| self.shadowed(*id)) {
                listed.start += 1;
            }
            let fresh: Vec<JobId> =
                listed.ids[listed.start..].iter().copied().filter(|id| !self.shadowed(*id)).take(limit).collect();
            if fresh.len() == limit || listed.exhausted {
                return Ok((self.with_queued_here(fresh, queue, min_priority, limit), listed.exhausted));
            }
            let asked = if listed.ids.is_empty() { limit.max(prefetch) } else { listed.ids.len().max(limit) };
            let jobs = self.store.claim_candidates(queue, min_priority, listed.last, asked)?;
            listed.exhausted = jobs.len() < asked;
            // Only their ids are kept here: the jobs themselves go to the step's reads,
            // where the claim finds them (one copy, not one per question).
            let mut read = self.read.borrow_mut();
            for job in jobs {
                assert_eq!(job.state, JobState::Queued, "claim candidate {} is not QUEUED", job.id);
                assert_eq!(job.queue, queue, "claim candidate {} is of queue {}", job.id, job.queue);
                listed.last = Some((job.priority, job.seq));
                listed.ids.push(job.id);
                if !self.shadowed(job.id) {
                    read.entry(job.id).or_insert(job);
                }
            }
        }
    }

    /// `listed` (the store's first candidates, in pop order) with this step's own `QUEUED`
    /// jobs of `queue` put in their places, the first `limit` of them.
    fn with_queued_here(&self, listed: Vec<JobId>, queue: &str, min_priority: Option<i32>, limit: usize) -> Vec<JobId> {
        let here: Vec<&Job> = self
            .queued_here
            .iter()
            .map(|id| &self.changed[id])
            .filter(|job| job.queue == queue && min_priority.is_none_or(|floor| job.priority >= floor))
            .collect();
        if here.is_empty() {
            return listed;
        }
        let read = self.read.borrow();
        let mut all: Vec<(std::cmp::Reverse<i32>, u64, JobId)> = listed
            .iter()
            .map(|id| {
                let job = &read[id];
                (std::cmp::Reverse(job.priority), job.seq, job.id)
            })
            .chain(here.iter().map(|job| (std::cmp::Reverse(job.priority), job.seq, job.id)))
            .collect();
        all.sort_unstable();
        all.into_iter().take(limit).map(|(_, _, id)| id).collect()
    }

    pub fn ready_queues(&self) -> StoreResult<Vec<String>> {
        let stored = match &*self.stored_ready_queues.borrow() {
            Some(stored) => stored.clone(),
            None => self.store.ready_queues()?,
        };
        *self.stored_ready_queues.borrow_mut() = Some(stored.clone());
        let mut queues: BTreeSet<String> = stored.into_iter().collect();
        // `queued_here` is exactly the changed jobs left QUEUED.
        queues.extend(self.queued_here.iter().map(|id| self.changed[id].queue.clone()));
        Ok(queues.into_iter().collect())
    }

    /// Jobs holding a worker slot, in one queue or in all, of one node or of all.
    pub fn process_count(&self, queue: Option<&str>, node: Option<&str>) -> StoreResult<usize> {
        let key = (queue.map(str::to_owned), node.map(str::to_owned));
        let stored = self.stored_process_counts.borrow().get(&key).copied();
        let count = match stored {
            Some(count) => count,
            None => {
                let count = match node {
                    Some(node) => self.store.node_process_count(queue, node)?,
                    None => self.store.process_count(queue)?,
                };
                self.stored_process_counts.borrow_mut().insert(key, count);
                count
            }
        };
        let in_scope = |(job_queue, job_node): &(String, Option<String>)| {
            queue.is_none_or(|q| q == job_queue) && node.is_none_or(|n| job_node.as_deref() == Some(n))
        };
        let delta: i64 = self.occupancy_delta.iter().filter(|(scope, _)| in_scope(scope)).map(|(_, delta)| delta).sum();
        Ok(usize::try_from(count as i64 + delta).expect("a count of jobs holding a slot"))
    }

    pub fn due_jobs(&self, limit: usize) -> StoreResult<Vec<Job>> {
        let now_ms = self.now_ms;
        let stored = self.store.due_jobs(now_ms, limit)?;
        let mut jobs =
            self.merge(stored, |job| job.wake_at_ms.is_some_and(|w| w <= now_ms), |job| (job.wake_at_ms, job.seq));
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.wall_timed_jobs(offset_ms, limit)?;
        let keep = |job: &Job| job.wall_offset_ms.is_some_and(|placed_ms| placed_ms != offset_ms);
        let mut jobs = self.merge(stored, keep, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    /// The earliest `wake_at_ms` of any job, this step's writes included.
    pub fn next_wake_at(&self) -> StoreResult<Option<u64>> {
        // Every shadowed job could hold one of the store's earliest wake-ups; one more row
        // than there are shadowed jobs is sure to include the first that is not.
        let shadowed = self.changed.len() + self.deleted.len();
        let stored = self.store.due_jobs(u64::MAX, shadowed + 1)?;
        let stored = stored.into_iter().find(|job| !self.shadowed(job.id)).and_then(|job| job.wake_at_ms);
        let ours = self.changed.values().filter_map(|job| job.wake_at_ms).min();
        Ok([stored, ours, self.next_recurring_at()?].into_iter().flatten().min())
    }

    /// A page of the store's jobs, as the store holds them: only for a step that has
    /// written nothing yet (a retry by filter reads its matches first).
    pub fn query(&self, query: &crate::store::JobQuery) -> StoreResult<crate::store::JobPage> {
        assert!(self.touch_order.is_empty(), "a query after this step's own writes would miss them");
        let page = self.store.query(query)?;
        Ok(crate::store::JobPage { items: self.unshadowed_read(page.items), ..page })
    }

    /// The store's paused queues (the engine reads them once, at recovery).
    pub fn stored_paused_queues(&self) -> StoreResult<Vec<String>> {
        self.store.paused_queues()
    }

    pub fn set_paused(&mut self, queue: &str, paused: bool) {
        self.paused.insert(queue.to_owned(), paused);
    }

    pub fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        match self.recurring.get(name) {
            Some(changed) => Ok(changed.clone()),
            None => self.store.recurring(name),
        }
    }

    /// Every recurring job, counting this step's changes, by name.
    pub fn recurring_all(&self) -> StoreResult<Vec<Recurring>> {
        let mut all: BTreeMap<String, Recurring> =
            self.store.recurring_list()?.into_iter().map(|r| (r.name.clone(), r)).collect();
        for (name, changed) in &self.recurring {
            match changed {
                Some(recurring) => all.insert(name.clone(), recurring.clone()),
                None => all.remove(name),
            };
        }
        Ok(all.into_values().collect())
    }

    /// How many recurring jobs exist, counting this step's changes.
    pub fn recurring_count(&self) -> StoreResult<usize> {
        let stored = self.store.recurring_list()?;
        let unchanged = stored.iter().filter(|r| !self.recurring.contains_key(&r.name)).count();
        Ok(unchanged + self.recurring.values().filter(|r| r.is_some()).count())
    }

    pub fn put_recurring(&mut self, recurring: Recurring) {
        self.recurring.insert(recurring.name.clone(), Some(recurring));
    }

    pub fn delete_recurring(&mut self, name: &str) {
        self.recurring.insert(name.to_owned(), None);
    }

    /// Recurring jobs due at `now_ms` that this step has not changed yet.
    pub fn recurring_due(&self, limit: usize) -> StoreResult<Vec<Recurring>> {
        let due = self.store.recurring_due(self.now_ms, limit + self.recurring.len())?;
        Ok(due.into_iter().filter(|r| !self.recurring.contains_key(&r.name)).take(limit).collect())
    }

    /// The earliest unfired slot of any recurring job, counting this step's changes.
    pub fn next_recurring_at(&self) -> StoreResult<Option<u64>> {
        let stored = self.store.recurring_due(u64::MAX, self.recurring.len() + 1)?;
        let stored = stored.into_iter().find(|r| !self.recurring.contains_key(&r.name)).and_then(|r| r.next_at_ms);
        let ours = self.recurring.values().flatten().filter_map(|r| r.next_at_ms).min();
        Ok([stored, ours].into_iter().flatten().min())
    }

    pub fn labelled_jobs(
        &self,
        tag: Option<&str>,
        chain_group_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let stored = self.store.labelled_jobs(tag, chain_group_id, limit)?;
        let keep = |job: &Job| {
            !job.state.is_terminal()
                && tag.is_none_or(|t| job.tag.as_deref() == Some(t))
                && chain_group_id.is_none_or(|g| job.chain_group_id.as_deref() == Some(g))
        };
        let mut jobs = self.merge(stored, keep, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.waiting_children(parent, limit)?;
        let mut jobs = self.unshadowed(stored);
        let ours = self.by_parent.get(&parent).map_or(&[][..], Vec::as_slice);
        jobs.extend(ours.iter().map(|id| &self.changed[id]).filter(|job| !job.state.is_terminal()).cloned());
        jobs.sort_by_key(|job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.event_waiters(name, limit)?;
        let keep = |job: &Job| {
            job.state.is_waiting() && !job.event_released && job.conditions.wait_for_event.as_deref() == Some(name)
        };
        let mut jobs = self.merge(stored, keep, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.system_waiters(limit)?;
        let mut jobs = self.merge(stored, |job| job.state.is_waiting() && job.conditions.needs_system(), |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.process_holders(limit)?;
        let mut jobs = self.merge(stored, Job::occupies_subject, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    /// This step's writes hold only while `node`'s lease is expired.
    pub fn guard_node_lost(&mut self, node: &str) {
        self.lost_nodes.insert(node.to_owned());
    }

    pub fn jobs_of_node(&self, node: &str, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.jobs_of_node(node, limit)?;
        let keep = |job: &Job| job.occupies_subject() && job.node.as_deref() == Some(node);
        let mut jobs = self.merge(stored, keep, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        let stored = self.store.purgeable(finished_before_ms, limit)?;
        let keep = |job: &Job| {
            job.state.is_terminal() && !job.reap_pending && job.finished_at_ms.is_some_and(|t| t < finished_before_ms)
        };
        let mut jobs = self.merge(stored, keep, |job| job.seq);
        jobs.truncate(limit);
        Ok(jobs)
    }

    fn touch(&mut self, id: JobId, original: Option<Job>) {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.originals.entry(id) {
            entry.insert(original);
            self.touch_order.push(id);
        }
    }

    pub fn insert(&mut self, job: Job) {
        assert!(!self.originals.contains_key(&job.id), "job {} inserted twice in one step", job.id);
        assert_finished_marks_end(&job);
        let mut job = job;
        job.version = 1;
        // As an update that queues a job: the scheduler may claim it.
        self.may_claim |= job.state == JobState::Queued;
        self.touch(job.id, None);
        self.remember(&job);
        self.note_queued(&job);
        self.note_occupancy(None, &job);
        self.changed.insert(job.id, job);
    }

    /// `job` replaces a version that held a slot of `was` (queue, node), or none.
    fn note_occupancy(&mut self, was: Option<(String, Option<String>)>, job: &Job) {
        let now = job.occupies_subject().then(|| (job.queue.clone(), job.node.clone()));
        if was == now {
            return;
        }
        if let Some(scope) = was {
            *self.occupancy_delta.entry(scope).or_default() -= 1;
        }
        if let Some(scope) = now {
            *self.occupancy_delta.entry(scope).or_default() += 1;
        }
    }

    fn note_queued(&mut self, job: &Job) {
        if job.state == JobState::Queued {
            self.queued_here.insert(job.id);
        } else {
            self.queued_here.remove(&job.id);
        }
    }

    /// Indexes a job the step changes for the first time (subject, parent and seq never
    /// change).
    fn remember(&mut self, job: &Job) {
        if !self.changed.contains_key(&job.id) {
            self.by_subject.entry(job.subject_key.clone()).or_default().push(job.id);
            if let Some(parent) = job.parent_job_id {
                self.by_parent.entry(parent).or_default().push(job.id);
            }
            self.changed_max_seq = self.changed_max_seq.max(job.seq);
        }
    }

    /// Records the new value of a job read earlier in this step. Asserts the rule that a
    /// terminal job never changes its outcome, and that the value was read after the
    /// job's last update. The step's write carries the stored version plus one, however
    /// many updates the step made (see `into_parts`).
    pub fn update(&mut self, job: Job) -> StoreResult<()> {
        // The job as this step last left it, or else as stored: then moved out of the
        // step's reads (once changed, a job is always found in `changed`) instead of
        // copied, and kept as the original the write set is judged against.
        let stored = match self.changed.contains_key(&job.id) {
            true => None,
            false => Some(match self.read.get_mut().remove(&job.id) {
                Some(read) => read,
                None => self.stored(job.id)?.unwrap_or_else(|| panic!("update of unknown job {}", job.id)),
            }),
        };
        let current = stored.as_ref().unwrap_or_else(|| &self.changed[&job.id]);
        assert_eq!(current.version, job.version, "job {} updated from a stale read", job.id);
        assert!(!self.deleted.contains(&job.id), "job {} updated after its purge", job.id);
        assert_terminal_kept(current, &job);
        assert_spec_kept(current, &job);
        assert_finished_marks_end(&job);
        let started_or_freed =
            current.state != job.state && (job.state == JobState::Queued || current.state == JobState::Running);
        let occupied = current.occupies_subject().then(|| (current.queue.clone(), current.node.clone()));
        if started_or_freed || (current.reap_pending && !job.reap_pending) {
            self.may_claim = true;
        }
        if let Some(stored) = stored {
            self.touch(job.id, Some(stored));
        }
        // Within the step the version counts every update, so that a copy read before
        // another rule moved the job trips the assertion above instead of undoing it.
        let mut job = job;
        job.version += 1;
        self.remember(&job);
        self.note_queued(&job);
        self.note_occupancy(occupied, &job);
        self.changed.insert(job.id, job);
        Ok(())
    }

    pub fn delete(&mut self, job: &Job) {
        assert!(job.state.is_terminal() && !job.reap_pending, "only finished jobs are purged");
        assert!(!self.changed.contains_key(&job.id), "job {} changed and purged in one step", job.id);
        self.deleted.insert(job.id);
        self.touch(job.id, Some(job.clone()));
    }

    pub fn spawn(&mut self, job: &Job) {
        self.actions.push(Action::Spawn(Box::new(job.clone())));
    }

    pub fn kill(&mut self, job: &Job) {
        self.actions.push(Action::Kill(KillOrder {
            job_id: job.id,
            attempt: job.attempts,
            pid: job.pid,
            pid_started_at: job.pid_started_at,
        }));
    }

    /// Forgets every write and action of the step (a batch refused half-way).
    pub fn rollback(&mut self) {
        self.changed.clear();
        self.originals.clear();
        self.deleted.clear();
        self.by_subject.clear();
        self.by_parent.clear();
        self.queued_here.clear();
        self.occupancy_delta.clear();
        self.changed_max_seq = 0;
        self.touch_order.clear();
        self.paused.clear();
        self.recurring.clear();
        self.actions.clear();
        self.may_claim = false;
    }

    /// The step's writes, one per job, each carrying the version the store must hold.
    /// `written_from` holds, for each job of `written`, its state before the step (`None`:
    /// inserted by it).
    pub fn into_parts(self) -> (WriteSet, Vec<Action>, bool, Vec<Option<JobState>>) {
        let mut writes = Vec::with_capacity(self.touch_order.len());
        let mut written_from = Vec::new();
        // Consumed: each changed job moves out once instead of being cloned (a job
        // appears once in `touch_order`).
        let mut changed = self.changed;
        for id in &self.touch_order {
            let original = &self.originals[id];
            if self.deleted.contains(id) {
                let original = original.as_ref().expect("only stored jobs are deleted");
                writes.push(Write::Delete { id: *id, version: original.version });
                continue;
            }
            let mut job = changed.remove(id).expect("a touched job that is not deleted is changed");
            match original {
                None => {
                    job.version = 1;
                    writes.push(Write::Insert(job));
                }
                Some(original) => {
                    job.version = original.version;
                    if *original == job {
                        continue; // touched but unchanged
                    }
                    job.version = original.version + 1;
                    writes.push(Write::Update(job));
                }
            }
            written_from.push(original.as_ref().map(|original| original.state));
        }
        for (queue, paused) in self.paused {
            writes.push(Write::QueuePaused { queue, paused });
        }
        for (name, recurring) in self.recurring {
            writes.push(match recurring {
                Some(recurring) => Write::PutRecurring(recurring),
                None => Write::DeleteRecurring { name },
            });
        }
        if !writes.is_empty() {
            // First: a store that checks the lease then holds its row before any job moves.
            let guards = self.lost_nodes.into_iter().map(|node| Write::NodeLeaseExpired { node });
            writes.splice(0..0, guards);
        }
        (WriteSet { writes }, self.actions, self.may_claim, written_from)
    }
}

/// (queue, node) of a process count; `None` = all.
type ProcessScope = (Option<String>, Option<String>);

/// A store list kept for the step: what it answered and how many were asked for.
#[derive(Default)]
struct Listed {
    ids: Vec<JobId>,
    /// Every id before this one is shadowed.
    start: usize,
    /// (priority, seq) of the last job listed: the list goes on after it.
    last: Option<(i32, u64)>,
    /// The store had no more.
    exhausted: bool,
}

fn is_active(job: &Job) -> bool {
    !job.state.is_terminal() || job.reap_pending
}

/// What a client gave and the engine derived at enqueue never changes afterwards: stores
/// may keep it apart from what does (the SQLite store updates only the rest).
fn assert_spec_kept(before: &Job, after: &Job) {
    fn spec(job: &Job) -> impl PartialEq + '_ {
        (
            (job.seq, job.id, &job.queue, &job.job_type, &job.subject_key, job.generation, job.priority),
            (&job.payload_json, &job.exec, job.max_attempts, job.backoff.base_ms, job.backoff.max_ms),
            (job.backoff.factor.to_bits(), job.backoff.jitter.to_bits(), job.timeout_ms, job.ttl_ms),
            (job.deadline_wall_ms, job.at_wall_ms),
            (&job.conditions, job.parent_job_id, &job.tag, &job.chain_group_id, &job.trace_id, job.created_at_ms),
            job.retry_of,
        )
    }
    assert!(spec(before) == spec(after), "job {}: what was fixed at enqueue changed", before.id);
}

/// A job has `finished_at_ms` exactly when it is terminal: SQL stores may ask "is it
/// live?" of that column instead of the state (the SQLite store's partial indexes do, so
/// that a claim, which changes the state of a live job, leaves them alone).
fn assert_finished_marks_end(job: &Job) {
    assert_eq!(
        job.state.is_terminal(),
        job.finished_at_ms.is_some(),
        "job {}: {} with finished_at_ms {:?}",
        job.id,
        job.state,
        job.finished_at_ms
    );
}

fn assert_terminal_kept(before: &Job, after: &Job) {
    assert!(
        !after.state.is_terminal() || after.wall_offset_ms.is_none(),
        "job {}: an ended job follows the wall clock",
        after.id
    );
    if !before.state.is_terminal() {
        return;
    }
    assert_eq!(before.state, after.state, "job {}: terminal state {} must never change", before.id, before.state);
    assert_eq!(before.finished_at_ms, after.finished_at_ms, "job {}: outcome of a terminal job changed", before.id);
    assert_eq!(before.error, after.error, "job {}: outcome of a terminal job changed", before.id);
    assert_eq!(before.exit_code, after.exit_code, "job {}: outcome of a terminal job changed", before.id);
    assert_eq!(
        before.result_summary_json, after.result_summary_json,
        "job {}: outcome of a terminal job changed",
        before.id
    );
    assert!(!after.reap_pending || before.reap_pending, "job {}: a terminal job cannot gain a process", before.id);
}
