//! The writer's filter of every subject the file has held: a subject it has never seen
//! has no row in `subjects` (so no highest generation) and no job, and the engine's
//! questions about it at enqueue (`max_generation`, `active_jobs_of_subject`,
//! `occupying_job_ids`) are answered without a query. A Bloom filter: it may say "maybe"
//! for a subject never seen (then the store asks the file, as without it), never "no"
//! for one that was.
//!
//! Only the file's one writer keeps one (its inserts are every way a subject enters the
//! file, and `subjects` rows are never deleted). It is filled from the file by a thread of
//! its own, so that opening a database with a million subjects does not wait for the
//! scan; the writer adds each subject it writes from the start, and the filter answers
//! only once the scan is done. A subject committed before the scan's snapshot is in the
//! scan; one written later was added by the writer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fastbloom::AtomicBloomFilter;
use rusqlite::{Connection, OpenFlags};

/// 8 Mbit (1 MiB): about 3% of answers for unseen subjects are "maybe" at a million
/// subjects, well under 1% below 300,000.
const FILTER_BITS: usize = 1 << 23;
const EXPECTED_SUBJECTS: usize = 1_000_000;

pub(crate) struct SubjectFilter {
    filter: AtomicBloomFilter,
    /// Set once every subject of the file is in the filter.
    filled: AtomicBool,
}

impl SubjectFilter {
    /// A filter that answers only once [`SubjectFilter::fill`] has run.
    pub(crate) fn new() -> Arc<SubjectFilter> {
        Arc::new(SubjectFilter {
            filter: AtomicBloomFilter::with_num_bits(FILTER_BITS).expected_items(EXPECTED_SUBJECTS),
            filled: AtomicBool::new(false),
        })
    }

    /// Fills the filter from the file at `path` on a thread of its own. A scan that fails
    /// (the file went away) leaves it unfilled: every question is then asked of the file.
    pub(crate) fn fill_in_background(self: &Arc<Self>, path: &Path) {
        let (filter, path) = (Arc::clone(self), path.to_path_buf());
        // Either failure (no thread, no scan) only costs the queries the filter saves.
        let _ = std::thread::Builder::new().name("semantica-subjects".into()).spawn(move || filter.fill(&path));
    }

    /// Adds every subject of the file at `path`, then answers from now on.
    pub(crate) fn fill(&self, path: &Path) -> rusqlite::Result<()> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let mut statement = conn.prepare("SELECT subject_key FROM subjects")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            self.filter.insert(row.get_ref(0)?.as_str()?);
        }
        self.filled.store(true, Ordering::Release);
        Ok(())
    }

    /// Before the subject's row is written: the filter never lags the file.
    pub(crate) fn insert(&self, subject_key: &str) {
        self.filter.insert(subject_key);
    }

    pub(crate) fn filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// `false`: the file has never held this subject.
    pub(crate) fn may_hold(&self, subject_key: &str) -> bool {
        !self.filled.load(Ordering::Acquire) || self.filter.contains(subject_key)
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
        let filter = SubjectFilter::new();
        assert!(filter.may_hold("never"), "unfilled: every subject may be there");
        filter.insert("written-meanwhile");
        filter.fill(&path).unwrap();
        assert!(filter.may_hold("in-file"));
        assert!(filter.may_hold("written-meanwhile"));
        let unseen = (0..1_000).filter(|n| !filter.may_hold(&format!("other-{n}"))).count();
        assert!(unseen > 990, "a nearly empty filter says no to almost every unseen subject: {unseen}");
    }
}
