//! The writer's view of the jobs that hold a worker slot: `RUNNING`, or a process that
//! may still live (`reap_pending`). There are at most as many as the workers plus the
//! few being reaped, and every claim asks about them twice (how many run, in all and in
//! the queue; does the candidate's subject have one), so the file's one writer keeps
//! them in memory instead of querying a partial index each time.
//!
//! Unlike the job cache, the view follows the open transaction write by write (a later
//! step of the same group commit must see an earlier step's claim), and keeps what it
//! replaced, so that a write set that failed part way or a rolled-back transaction
//! puts it back. Loaded from the file when the store becomes its only writer; checked
//! against the file on every answer in verify mode.

use std::collections::HashMap;

use rusqlite::Connection;
use semantica_core::{Job, JobId};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Occupant {
    seq: u64,
    queue: String,
    subject_key: String,
}

impl Occupant {
    fn of(job: &Job) -> Option<Occupant> {
        job.occupies_subject().then(|| Occupant {
            seq: job.seq,
            queue: job.queue.clone(),
            subject_key: job.subject_key.clone(),
        })
    }
}

pub(crate) struct Occupants {
    jobs: HashMap<JobId, Occupant>,
    /// What each write of the open transaction replaced, in order.
    undo: Vec<(JobId, Option<Occupant>)>,
}

impl Occupants {
    /// The occupants the file holds (a scan of the partial index of processes).
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Occupants> {
        let mut statement = conn.prepare(
            "SELECT id, seq, queue, subject_key FROM jobs INDEXED BY jobs_processes
             WHERE state = 'RUNNING' OR reap_pending = 1",
        )?;
        let mut rows = statement.query([])?;
        let mut jobs = HashMap::new();
        while let Some(row) = rows.next()? {
            let id: String = row.get(0)?;
            let id = id
                .parse::<JobId>()
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
            let seq: i64 = row.get(1)?;
            jobs.insert(id, Occupant { seq: seq as u64, queue: row.get(2)?, subject_key: row.get(3)? });
        }
        Ok(Occupants { jobs, undo: Vec::new() })
    }

    /// A write of the open transaction; `None` for a delete. Only a write that changes
    /// the view is remembered for undo, so a transaction of many waiting jobs (a batch of
    /// enqueues, an event's release) keeps no list as long as itself.
    pub(crate) fn written(&mut self, id: JobId, job: Option<&Job>) {
        let before = match job.and_then(Occupant::of) {
            Some(occupant) => self.jobs.insert(id, occupant),
            None => match self.jobs.remove(&id) {
                Some(occupant) => Some(occupant),
                None => return,
            },
        };
        self.undo.push((id, before));
    }

    /// Where the open transaction's writes stand, for [`Occupants::undo_to`].
    pub(crate) fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Puts back what the writes after `mark` replaced.
    pub(crate) fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let (id, before) = self.undo.pop().expect("longer than mark");
            match before {
                Some(occupant) => self.jobs.insert(id, occupant),
                None => self.jobs.remove(&id),
            };
        }
    }

    pub(crate) fn committed(&mut self) {
        self.undo.clear();
    }

    pub(crate) fn rolled_back(&mut self) {
        self.undo_to(0);
    }

    /// The occupants of a subject, in `seq` order.
    pub(crate) fn of_subject(&self, subject_key: &str) -> Vec<JobId> {
        let mut ids: Vec<(u64, JobId)> = self
            .jobs
            .iter()
            .filter(|(_, occupant)| occupant.subject_key == subject_key)
            .map(|(id, occupant)| (occupant.seq, *id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// How many occupy a slot, in `queue` or in all.
    pub(crate) fn count(&self, queue: Option<&str>) -> usize {
        match queue {
            None => self.jobs.len(),
            Some(queue) => self.jobs.values().filter(|occupant| occupant.queue == queue).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semantica_core::JobState;

    fn job(n: u128, state: JobState, subject: &str) -> Job {
        Job { state, seq: n as u64, queue: "q".into(), subject_key: subject.into(), ..Job::blank(JobId::from_u128(n)) }
    }

    fn empty() -> Occupants {
        Occupants { jobs: HashMap::new(), undo: Vec::new() }
    }

    #[test]
    fn writes_show_at_once_and_an_undo_puts_back_what_they_replaced() {
        let mut occupants = empty();
        occupants.written(JobId::from_u128(1), Some(&job(1, JobState::Running, "a")));
        occupants.committed();
        let mark = occupants.mark();
        occupants.written(JobId::from_u128(9), Some(&job(9, JobState::Queued, "a")));
        assert_eq!(occupants.mark(), mark, "a write that changes nothing here is not remembered");
        occupants.written(JobId::from_u128(1), Some(&job(1, JobState::Done, "a")));
        occupants.written(JobId::from_u128(2), Some(&job(2, JobState::Running, "a")));
        assert_eq!(occupants.of_subject("a"), vec![JobId::from_u128(2)]);
        assert_eq!(occupants.count(Some("q")), 1);
        occupants.undo_to(mark);
        assert_eq!(occupants.of_subject("a"), vec![JobId::from_u128(1)]);
        occupants.written(JobId::from_u128(3), Some(&job(3, JobState::Running, "b")));
        occupants.written(JobId::from_u128(1), None);
        assert_eq!(occupants.count(None), 1);
        occupants.rolled_back();
        assert_eq!(occupants.count(None), 1);
        assert_eq!(occupants.of_subject("a"), vec![JobId::from_u128(1)]);
        assert!(occupants.of_subject("b").is_empty());
        assert_eq!(occupants.count(Some("other")), 0);
    }
}
