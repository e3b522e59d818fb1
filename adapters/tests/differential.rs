//! The SQLite store against core's reference store (`support/differential.rs`): the same
//! random operations on a `MemStore` and on a `SqliteStore` in a temp dir, every step and
//! every read compared. A restart drops the engines and reopens the SQLite file.

use std::collections::BTreeSet;

use proptest::prelude::*;

#[path = "support/differential.rs"]
mod differential;
#[path = "../../core/tests/support/ops.rs"]
mod ops;

use differential::Pair;
use ops::Op;
use proptest::strategy::ValueTree;
use semantica_adapters::{SqliteOptions, SqliteStore};
use semantica_core::JobState;

/// A pair on a new SQLite file in a temp dir that lives as long as the pair.
fn sqlite_pair(seed: u64) -> Pair<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("semantica.db");
    Pair::new(
        seed,
        "SqliteStore",
        Box::new(move || {
            let _keep = &dir;
            let mut store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
            // The writer's cache of committed jobs, as the daemon runs it but small (so
            // that it evicts), with every answer it gives checked against the file.
            store.enable_cache(64 << 10);
            store.verify_cache(true);
            // Its filter of subjects answers once filled: from then on, every "never
            // held" it says is checked against the file too.
            assert!(store.wait_for_filters(std::time::Duration::from_secs(10)), "never filled");
            store
        }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// The SQLite store answers every question exactly as the reference store does, and
    /// keeps it all across a reopen.
    #[test]
    fn sqlite_store_matches_the_reference_store(seed: u64, ops in ops::ops(ops::STORE)) {
        let mut pair = sqlite_pair(seed);
        for op in &ops {
            pair.play(op);
        }
        pair.play(&Op::Restart);
    }
}

/// The random sequences reach every state (else the comparison above proves little).
#[test]
fn random_sequences_reach_every_state() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(ops::op(ops::STORE), 150..200);
    let mut states = BTreeSet::new();
    for seed in 0..4 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut pair = sqlite_pair(seed);
        for op in &ops {
            pair.play(op);
        }
        states.extend(pair.states);
    }
    assert_eq!(states, JobState::ALL.into_iter().collect::<BTreeSet<_>>());
}
