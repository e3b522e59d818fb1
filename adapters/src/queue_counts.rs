//! What a job counts for in the per-queue counts both SQL stores keep as they write
//! (`queue_counts`: jobs, wait sum and started, per queue and state), and the changes one
//! write set makes to them. Each store reads the old row its own way and writes the
//! deltas to its own table.

use std::collections::BTreeMap;

use semantica_core::{Job, JobState, StoreError, StoreResult};

/// What one job adds to its queue's counts.
#[derive(PartialEq, Debug)]
pub(crate) struct Counted {
    pub(crate) queue: String,
    pub(crate) state: JobState,
    /// max(started_at_ms - due_at_ms, 0) once started.
    pub(crate) wait_ms: Option<u64>,
}

impl Counted {
    pub(crate) fn of(job: &Job) -> Counted {
        Counted {
            queue: job.queue.clone(),
            state: job.state,
            wait_ms: job.started_at_ms.map(|started| started.saturating_sub(job.due_at_ms)),
        }
    }

    /// From a stored row's `queue, state, started_at_ms, due_at_ms`.
    pub(crate) fn stored(
        queue: String,
        state: &str,
        started_at_ms: Option<i64>,
        due_at_ms: i64,
    ) -> StoreResult<Counted> {
        let state = state
            .parse::<JobState>()
            .map_err(|e| StoreError::Corrupt(format!("jobs.state: unknown state {:?}", e.0)))?;
        let wait_ms = started_at_ms.map(|started| started.saturating_sub(due_at_ms).max(0) as u64);
        Ok(Counted { queue, state, wait_ms })
    }
}

/// Changes to the counts of one write set: (jobs, wait sum, started) per queue and state,
/// in (queue, state) order, so that writers that lock count rows take them in one order.
#[derive(Default)]
pub(crate) struct CountDeltas(BTreeMap<(String, JobState), (i64, i64, i64)>);

impl CountDeltas {
    pub(crate) fn add(&mut self, counted: &Counted, sign: i64) {
        let entry = self.0.entry((counted.queue.clone(), counted.state)).or_default();
        entry.0 += sign;
        if let Some(wait_ms) = counted.wait_ms {
            entry.1 = entry.1.saturating_add(sign.saturating_mul(i64::try_from(wait_ms).unwrap_or(i64::MAX)));
            entry.2 += sign;
        }
    }

    /// The changes that are not zero: ((queue, state), (jobs, wait sum, started)).
    pub(crate) fn changes(self) -> impl Iterator<Item = ((String, JobState), (i64, i64, i64))> {
        self.0.into_iter().filter(|(_, delta)| *delta != (0, 0, 0))
    }
}
