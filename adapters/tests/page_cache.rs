//! The page cache wrapper (`adapters/src/sqlite/page_cache.rs`) on real SQLite files.
//!
//! A test binary of its own: SQLite takes the wrapper only if nothing in the process has
//! initialized SQLite before the first store opens, and every test here opens a store
//! first.

use rusqlite::{params, Connection};
use semantica_adapters::sqlite::{
    page_cache_installed, page_cache_truncations_passed_on, page_cache_truncations_skipped,
};
use semantica_adapters::{SqliteOptions, SqliteStore};

/// A store first (it installs the wrapper), then a plain connection to a scratch file with
/// the writer's cache size, and a table whose random keys make b-tree balances sort pages.
fn scratch(dir: &tempfile::TempDir) -> Connection {
    let _store = SqliteStore::open(dir.path().join("jobs.db"), &SqliteOptions::default()).unwrap();
    assert!(page_cache_installed(), "SQLite refused the page cache wrapper");
    let conn = Connection::open(dir.path().join("scratch.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA cache_size = -32768;
         CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
         CREATE INDEX t_v ON t (v);",
    )
    .unwrap();
    conn
}

/// Deterministic keys spread over the whole key space.
fn key(i: u64) -> String {
    format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn insert(conn: &Connection, from: u64, to: u64, size: usize) {
    let mut statement = conn.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)").unwrap();
    for i in from..to {
        statement.execute(params![key(i), vec![(i % 251) as u8; size]]).unwrap();
    }
}

fn keys(conn: &Connection) -> Vec<String> {
    let mut statement = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

fn expected(ranges: &[(u64, u64)]) -> Vec<String> {
    let mut all: Vec<String> = ranges.iter().flat_map(|&(from, to)| (from..to).map(key)).collect();
    all.sort();
    all
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap()
}

#[test]
fn commits_after_page_sorting_balances_skip_the_truncation_that_frees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conn = scratch(&dir);
    let before = page_cache_truncations_skipped();
    for round in 0..40u64 {
        conn.execute_batch("BEGIN").unwrap();
        insert(&conn, round * 500, round * 500 + 500, 100);
        conn.execute_batch("COMMIT").unwrap();
    }
    assert!(
        page_cache_truncations_skipped() >= before + 20,
        "only {} of 40 commits skipped their truncation",
        page_cache_truncations_skipped() - before
    );
    assert_eq!(keys(&conn), expected(&[(0, 20_000)]));
    assert_eq!(integrity(&conn), "ok");
}

/// Growth undone (a savepoint's and a whole transaction's) leaves pages past the end of
/// the file in the cache: those truncations are passed on, and the file reads back as
/// written when it grows again over the same page numbers. (SQLite overwrites a page it
/// allocates anyway, so the counter is what shows the truncations were passed on.)
#[test]
fn pages_past_the_end_after_an_undone_growth_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let conn = scratch(&dir);
    insert(&conn, 0, 2_000, 100);
    let passed_before = page_cache_truncations_passed_on();
    for round in 0..10u64 {
        let base = 1_000_000 * (round + 1);
        conn.execute_batch("BEGIN; SAVEPOINT step").unwrap();
        insert(&conn, base, base + 1_500, 400);
        conn.execute_batch("ROLLBACK TO step; RELEASE step").unwrap();
        insert(&conn, base + 500_000, base + 500_100, 100);
        conn.execute_batch("COMMIT").unwrap();

        conn.execute_batch("BEGIN").unwrap();
        insert(&conn, base + 700_000, base + 701_500, 400);
        conn.execute_batch("ROLLBACK").unwrap();
    }
    assert!(
        page_cache_truncations_passed_on() >= passed_before + 10,
        "{} of 10 undone growths had their pages past the end dropped",
        page_cache_truncations_passed_on() - passed_before
    );
    insert(&conn, 3_000, 6_000, 300);
    let mut ranges = vec![(0, 2_000), (3_000, 6_000)];
    ranges.extend((0..10u64).map(|round| {
        let base = 1_000_000 * (round + 1) + 500_000;
        (base, base + 100)
    }));
    assert_eq!(keys(&conn), expected(&ranges));
    assert_eq!(integrity(&conn), "ok");
    // Read back by a connection with a cache of its own.
    let fresh = Connection::open(dir.path().join("scratch.db")).unwrap();
    assert_eq!(keys(&fresh), expected(&ranges));
    let sizes: i64 = fresh.query_row("SELECT sum(length(v)) FROM t", [], |row| row.get(0)).unwrap();
    assert_eq!(sizes, 2_000 * 100 + 3_000 * 300 + 10 * 100 * 100);
}
