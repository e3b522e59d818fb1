//! The writer's cache of jobs as committed, so that the engine's hot reads (the job a
//! report names, the candidate a claim starts, the state an update counts from) need not
//! decode a 49-column row each time.
//!
//! It is sound only for the one connection that writes the file: the data directory's
//! lock makes the daemon's writer that connection, and every other connection (readers,
//! the CLI's offline commands) runs without a cache. Rules:
//! - A job written by the open transaction is never answered from the cache until the
//!   transaction ends: it is removed when written and read from the file meanwhile (the
//!   file shows the transaction its own writes).
//! - What a transaction wrote enters the cache only when it has committed; a rollback (or
//!   a transaction that ended without the store being told how) drops it.
//! - A job read from the file while no write of the open transaction touched it is the
//!   committed job, and is kept.
//!
//! Bounded by bytes (`Job::data_bytes` plus a fixed estimate of the rest); jobs over 64 KiB
//! (or an eighth of the bound) are never kept. The oldest entry goes first.

use std::collections::{HashMap, HashSet, VecDeque};

use semantica_core::{Job, JobId, JobState};

use super::occupants::Occupants;

/// What a job costs besides its data bytes: the struct, the map entry, a dozen small
/// allocations and what the allocator loses around them (measured: the daemon's peak RSS
/// grew by about three times the data bytes alone).
const JOB_OVERHEAD_BYTES: usize = 1536;
/// Larger jobs are not kept: decoding is cheap next to their size, and a few of them
/// would crowd out thousands of small ones.
const JOB_BYTES_MAX: usize = 64 << 10;

pub(crate) struct JobCache {
    jobs: HashMap<JobId, (Job, u64)>,
    /// Entries in the order they came, with the stamp they came with: an entry replaced
    /// since has another stamp, and its old place in the line is skipped.
    order: VecDeque<(JobId, u64)>,
    next_stamp: u64,
    bytes: usize,
    bytes_max: usize,
    /// Writes of the open transaction, in order (`None`: deleted, or not kept).
    pending: Vec<(JobId, Option<Job>)>,
    /// What the kept jobs of `pending` weigh: bounded like the cache, so that a
    /// transaction of many writes (an event releasing thousands of jobs, a batch of
    /// batches) does not hold a copy of each.
    pending_bytes: usize,
    /// Every job the open transaction wrote, also in steps undone since.
    dirty: HashSet<JobId>,
    /// The jobs holding a worker slot, following the open transaction's writes (`None`:
    /// not known, the store asks the file).
    occupants: Option<Occupants>,
    /// The highest `seq` the file held when the last transaction ended (`None`: not known,
    /// the store asks the file). Never lowered: a purge keeps it (`counters.max_seq`).
    max_seq: Option<u64>,
    /// The highest `seq` written by the open transaction's steps that were not undone.
    pending_max_seq: u64,
}

/// Where the open transaction's writes stand, for [`JobCache::undo_to`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mark {
    pending: usize,
    occupants: usize,
    max_seq: u64,
}

fn size_of(job: &Job) -> usize {
    job.data_bytes() + JOB_OVERHEAD_BYTES
}

impl JobCache {
    pub(crate) fn new(bytes_max: usize) -> JobCache {
        JobCache {
            jobs: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
            bytes: 0,
            bytes_max,
            pending: Vec::new(),
            pending_bytes: 0,
            dirty: HashSet::new(),
            occupants: None,
            max_seq: None,
            pending_max_seq: 0,
        }
    }

    /// The highest `seq` the file holds as the open transaction left it, if known.
    pub(crate) fn max_seq(&self) -> Option<u64> {
        self.max_seq.map(|committed| committed.max(self.pending_max_seq))
    }

    /// The highest `seq` read from the file outside any write of a transaction.
    pub(crate) fn know_max_seq(&mut self, max_seq: u64) {
        if !self.in_transaction() {
            self.max_seq = Some(max_seq);
        }
    }

    /// Starts following the occupants, as `occupants` holds them now.
    pub(crate) fn set_occupants(&mut self, occupants: Option<Occupants>) {
        self.occupants = occupants;
    }

    pub(crate) fn occupants(&self) -> Option<&Occupants> {
        self.occupants.as_ref()
    }

    /// The committed job, if kept and not written by the open transaction.
    pub(crate) fn get(&self, id: JobId) -> Option<&Job> {
        if self.dirty.contains(&id) {
            return None;
        }
        self.jobs.get(&id).map(|(job, _)| job)
    }

    /// A job just read from the file.
    pub(crate) fn read(&mut self, job: &Job) {
        if !self.dirty.contains(&job.id) && !self.jobs.contains_key(&job.id) {
            self.keep(job.clone());
        }
    }

    /// A write of the open transaction; `None` for a delete. Not kept: a job written as
    /// ended (and not waiting for its process to be reaped), which the writer seldom reads
    /// again, and a `SCHEDULED` one, read once when it is due. Either would push out jobs
    /// still to be claimed or reported (a batch of jobs for later, the whole cache).
    pub(crate) fn written(&mut self, id: JobId, job: Option<&Job>) {
        self.remove(id);
        self.dirty.insert(id);
        // An update never moves a job's seq: the highest is an insert's.
        self.pending_max_seq = self.pending_max_seq.max(job.map_or(0, |job| job.seq));
        let kept = job
            .filter(|job| job.state != JobState::Scheduled && (!job.state.is_terminal() || job.reap_pending))
            .filter(|job| self.fits(job) && self.pending_bytes + size_of(job) <= self.bytes_max)
            .cloned();
        self.pending_bytes += kept.as_ref().map_or(0, size_of);
        self.pending.push((id, kept));
        if let Some(occupants) = &mut self.occupants {
            occupants.written(id, job);
        }
    }

    /// Where the open transaction's writes stand, for [`JobCache::undo_to`].
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            pending: self.pending.len(),
            occupants: self.occupants.as_ref().map_or(0, Occupants::mark),
            max_seq: self.pending_max_seq,
        }
    }

    /// Forgets the writes after `mark` (a write set that failed part way). Their jobs stay
    /// out of the cache until the transaction ends; the occupants are as they were at
    /// `mark`.
    pub(crate) fn undo_to(&mut self, mark: Mark) {
        for (_, job) in self.pending.drain(mark.pending.min(self.pending.len())..) {
            self.pending_bytes -= job.as_ref().map_or(0, size_of);
        }
        if let Some(occupants) = &mut self.occupants {
            occupants.undo_to(mark.occupants);
        }
        self.pending_max_seq = mark.max_seq;
    }

    /// The open transaction committed: its writes are what the file holds now.
    pub(crate) fn committed(&mut self) {
        self.max_seq = self.max_seq();
        self.pending_max_seq = 0;
        self.dirty.clear();
        if let Some(occupants) = &mut self.occupants {
            occupants.committed();
        }
        self.pending_bytes = 0;
        for (id, job) in std::mem::take(&mut self.pending) {
            self.remove(id);
            if let Some(job) = job {
                self.keep(job);
            }
        }
    }

    /// The open transaction was rolled back, or ended and nobody said how: none of its
    /// writes is kept (they were removed when written).
    pub(crate) fn rolled_back(&mut self) {
        if let Some(occupants) = &mut self.occupants {
            occupants.rolled_back();
        }
        self.pending.clear();
        self.pending_bytes = 0;
        self.pending_max_seq = 0;
        self.dirty.clear();
    }

    /// Whether a transaction has written through the cache since it was last told one
    /// ended.
    pub(crate) fn in_transaction(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.occupants = None;
        self.max_seq = None;
        self.jobs.clear();
        self.order.clear();
        self.bytes = 0;
        self.rolled_back();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.jobs.len()
    }

    fn keep(&mut self, job: Job) {
        let size = size_of(&job);
        if !self.fits(&job) {
            return;
        }
        while self.bytes + size > self.bytes_max {
            let Some((id, stamp)) = self.order.pop_front() else { break };
            if self.jobs.get(&id).is_some_and(|(_, kept)| *kept == stamp) {
                self.remove(id);
            }
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.bytes += size;
        self.order.push_back((job.id, stamp));
        self.jobs.insert(job.id, (job, stamp));
        // Replaced and removed entries leave their place in the line behind; do not let
        // those pile up.
        if self.order.len() > 2 * self.jobs.len() + 64 {
            let jobs = &self.jobs;
            self.order.retain(|(id, stamp)| jobs.get(id).is_some_and(|(_, kept)| kept == stamp));
        }
    }

    fn fits(&self, job: &Job) -> bool {
        size_of(job) <= JOB_BYTES_MAX.min(self.bytes_max / 8)
    }

    fn remove(&mut self, id: JobId) {
        if let Some((job, _)) = self.jobs.remove(&id) {
            self.bytes -= size_of(&job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u128, version: u64) -> Job {
        Job { version, ..Job::blank(JobId::from_u128(n)) }
    }

    #[test]
    fn jobs_written_as_scheduled_are_not_kept_and_push_out_nothing() {
        let mut cache = JobCache::new(64 * size_of(&job(0, 1)));
        cache.know_max_seq(1);
        cache.read(&job(1, 1));
        for n in 2..1_000 {
            cache.written(JobId::from_u128(n), Some(&Job { state: JobState::Scheduled, seq: n as u64, ..job(n, 1) }));
        }
        cache.committed();
        assert_eq!(cache.get(JobId::from_u128(1)).map(|j| j.version), Some(1), "a batch for later pushed it out");
        assert!(cache.get(JobId::from_u128(2)).is_none(), "a scheduled job is read once, when due");
        assert_eq!(cache.max_seq(), Some(999), "the highest seq still follows every insert");
        cache.written(JobId::from_u128(2), Some(&Job { state: JobState::Queued, ..job(2, 2) }));
        cache.committed();
        assert_eq!(cache.get(JobId::from_u128(2)).map(|j| j.version), Some(2), "once due, it is kept");
    }

    #[test]
    fn a_write_is_kept_only_once_its_transaction_commits() {
        let mut cache = JobCache::new(1 << 20);
        cache.read(&job(1, 1));
        assert_eq!(cache.get(JobId::from_u128(1)).map(|j| j.version), Some(1));
        cache.written(JobId::from_u128(1), Some(&job(1, 2)));
        assert!(cache.get(JobId::from_u128(1)).is_none(), "the open transaction's write is read from the file");
        cache.read(&job(1, 2));
        assert!(cache.get(JobId::from_u128(1)).is_none(), "nor kept when read back in the transaction");
        cache.committed();
        assert_eq!(cache.get(JobId::from_u128(1)).map(|j| j.version), Some(2));
    }

    #[test]
    fn the_highest_seq_follows_commits_undos_and_rollbacks() {
        let mut cache = JobCache::new(1 << 20);
        let at = |seq: u64| Job { seq, ..job(u128::from(seq), 1) };
        assert_eq!(cache.max_seq(), None, "not known until read from the file");
        cache.know_max_seq(10);
        assert_eq!(cache.max_seq(), Some(10));
        cache.written(JobId::from_u128(11), Some(&at(11)));
        cache.know_max_seq(3);
        assert_eq!(cache.max_seq(), Some(11), "a read inside a transaction that wrote is not taken");
        let mark = cache.mark();
        cache.written(JobId::from_u128(12), Some(&at(12)));
        assert_eq!(cache.max_seq(), Some(12));
        cache.undo_to(mark);
        assert_eq!(cache.max_seq(), Some(11), "an undone step's insert is gone");
        cache.written(JobId::from_u128(4), Some(&at(4)));
        cache.written(JobId::from_u128(5), None);
        cache.committed();
        assert_eq!(cache.max_seq(), Some(11), "an update, a delete: never lowered");
        cache.written(JobId::from_u128(20), Some(&at(20)));
        cache.rolled_back();
        assert_eq!(cache.max_seq(), Some(11), "a rolled back insert is gone");
        cache.clear();
        assert_eq!(cache.max_seq(), None);
    }

    #[test]
    fn an_ended_job_is_not_kept_when_written_but_is_when_read() {
        let mut cache = JobCache::new(1 << 20);
        let done = Job { state: semantica_core::JobState::Done, ..job(1, 2) };
        cache.written(done.id, Some(&done));
        cache.committed();
        assert!(cache.get(done.id).is_none(), "written as ended: not kept");
        cache.read(&done);
        assert_eq!(cache.get(done.id).map(|j| j.version), Some(2), "read back: kept");
    }

    #[test]
    fn a_rollback_keeps_nothing_of_the_transaction() {
        let mut cache = JobCache::new(1 << 20);
        cache.read(&job(1, 1));
        cache.written(JobId::from_u128(1), Some(&job(1, 2)));
        cache.written(JobId::from_u128(2), Some(&job(2, 1)));
        cache.rolled_back();
        assert!(cache.get(JobId::from_u128(1)).is_none());
        assert!(cache.get(JobId::from_u128(2)).is_none());
        cache.read(&job(1, 1));
        assert_eq!(cache.get(JobId::from_u128(1)).map(|j| j.version), Some(1));
    }

    #[test]
    fn a_step_undone_to_its_savepoint_leaves_the_earlier_steps_writes() {
        let mut cache = JobCache::new(1 << 20);
        cache.written(JobId::from_u128(1), Some(&job(1, 1)));
        let mark = cache.mark();
        cache.written(JobId::from_u128(1), Some(&job(1, 2)));
        cache.written(JobId::from_u128(2), Some(&job(2, 1)));
        cache.undo_to(mark);
        cache.committed();
        assert_eq!(cache.get(JobId::from_u128(1)).map(|j| j.version), Some(1));
        assert!(cache.get(JobId::from_u128(2)).is_none());
    }

    #[test]
    fn a_transaction_of_many_writes_keeps_copies_up_to_the_bound() {
        let bytes_max = 10 * (JOB_OVERHEAD_BYTES + 64);
        let mut cache = JobCache::new(bytes_max);
        for n in 0..1000 {
            cache.written(JobId::from_u128(n), Some(&job(n, 1)));
            assert!(cache.pending_bytes <= bytes_max);
        }
        let mark = cache.mark();
        cache.undo_to(Mark { pending: mark.pending - 500, ..mark });
        assert!(cache.pending_bytes <= bytes_max);
        cache.committed();
        assert_eq!(cache.pending_bytes, 0);
        assert!(cache.get(JobId::from_u128(0)).is_some(), "the first writes are kept");
        assert!(cache.get(JobId::from_u128(999)).is_none());
    }

    #[test]
    fn a_delete_removes_the_job_at_commit() {
        let mut cache = JobCache::new(1 << 20);
        cache.read(&job(1, 3));
        cache.written(JobId::from_u128(1), None);
        cache.committed();
        assert!(cache.get(JobId::from_u128(1)).is_none());
    }

    #[test]
    fn the_oldest_entries_go_first_when_full() {
        let mut cache = JobCache::new(10 * (JOB_OVERHEAD_BYTES + 64));
        for n in 0..100 {
            cache.read(&job(n, 1));
        }
        assert!((5..=cache.bytes_max / JOB_OVERHEAD_BYTES).contains(&cache.len()), "{}", cache.len());
        assert!(cache.get(JobId::from_u128(99)).is_some());
        assert!(cache.get(JobId::from_u128(0)).is_none());
        assert!(cache.bytes <= cache.bytes_max);
        assert!(cache.order.len() <= 2 * cache.jobs.len() + 64);
    }
}
