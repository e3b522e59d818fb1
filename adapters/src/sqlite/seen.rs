//! The writer's filters of keys the file has held, so that a question about a key it has
//! never seen is answered without a query:
//! - every subject: a subject never seen has no row in `subjects` (so no highest
//!   generation) and no job, and the engine's questions about it at enqueue
//!   (`max_generation`, `active_jobs_of_subject`, `occupying_job_ids`) need no query;
//! - every parent of a live job: a job that ends asks for its waiting children, and one
//!   never named a parent has none.
//!
//! Bloom filters: one may say "maybe" for a key never seen (then the store asks the file,
//! as without it), never "no" for one that was.
//!
//! Only the file's one writer keeps them (its inserts are every way a key enters the
//! file; `subjects` rows are never deleted, and a job's parent never changes). Each is
//! filled from the file by a thread of its own, so that opening a database with a million
//! subjects does not wait for the scan; the writer adds each key it writes from the
//! start, and a filter answers only once its scan is done. A key committed before the
//! scan's snapshot is in the scan; one written later was added by the writer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fastbloom::AtomicBloomFilter;
use rusqlite::{Connection, OpenFlags};

/// 8 Mbit (1 MiB): about 3% of answers for unseen keys are "maybe" at a million keys,
/// well under 1% below 300,000.
const FILTER_BITS: usize = 1 << 23;
const EXPECTED_KEYS: usize = 1_000_000;

/// Every subject of the file.
pub(crate) const SUBJECTS: &str = "SELECT subject_key FROM subjects";
/// The parent of every live job.
pub(crate) const PARENTS: &str = "SELECT parent_job_id FROM jobs INDEXED BY jobs_live_parent
     WHERE parent_job_id IS NOT NULL AND finished_at_ms IS NULL";

pub(crate) struct SeenFilter {
    filter: AtomicBloomFilter,
    /// The keys of the file, one per row.
    scan: &'static str,
    /// Set once every key of the file is in the filter.
    filled: AtomicBool,
}

impl SeenFilter {
    /// A filter of the keys `scan` lists, that answers only once [`SeenFilter::fill`]
    /// has run.
    pub(crate) fn new(scan: &'static str) -> Arc<SeenFilter> {
        Arc::new(SeenFilter {
            filter: AtomicBloomFilter::with_num_bits(FILTER_BITS).expected_items(EXPECTED_KEYS),
            scan,
            filled: AtomicBool::new(false),
        })
    }

    /// Fills the filter from the file at `path` on a thread of its own. A scan that fails
    /// (the file went away) leaves it unfilled: every question is then asked of the file.
    pub(crate) fn fill_in_background(self: &Arc<Self>, path: &Path) {
        let (filter, path) = (Arc::clone(self), path.to_path_buf());
        // Either failure (no thread, no scan) only costs the queries the filter saves.
        let _ = std::thread::Builder::new().name("semantica-seen".into()).spawn(move || filter.fill(&path));
    }

    /// Adds every key of the file at `path`, then answers from now on.
    pub(crate) fn fill(&self, path: &Path) -> rusqlite::Result<()> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let mut statement = conn.prepare(self.scan)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            self.filter.insert(row.get_ref(0)?.as_str()?);
        }
        self.filled.store(true, Ordering::Release);
        Ok(())
    }

    /// Before the key's row is written: the filter never lags the file.
    pub(crate) fn insert(&self, key: &str) {
        self.filter.insert(key);
    }

    pub(crate) fn filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// `false`: the file has never held this key.
    pub(crate) fn may_hold(&self, key: &str) -> bool {
        !self.filled.load(Ordering::Acquire) || self.filter.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfilled_filter_says_maybe_and_a_filled_one_knows_what_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE subjects (subject_key TEXT PRIMARY KEY, max_generation INTEGER);
             INSERT INTO subjects VALUES ('in-file', 1);",
        )
        .unwrap();
        let filter = SeenFilter::new(SUBJECTS);
        assert!(filter.may_hold("never"), "unfilled: every subject may be there");
        filter.insert("written-meanwhile");
        filter.fill(&path).unwrap();
        assert!(filter.may_hold("in-file"));
        assert!(filter.may_hold("written-meanwhile"));
        let unseen = (0..1_000).filter(|n| !filter.may_hold(&format!("other-{n}"))).count();
        assert!(unseen > 990, "a nearly empty filter says no to almost every unseen subject: {unseen}");
    }
}
