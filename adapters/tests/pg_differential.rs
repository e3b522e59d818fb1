//! The Postgres store against core's reference store (`support/differential.rs`, the
//! same run as SQLite's `differential.rs`): random operations on a `MemStore` and on a
//! `PgStore` in a fresh schema of the test cluster, every step and every read compared.
//! A restart drops the engines and opens the schema again through a new connection.
//! Needs `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

use std::collections::BTreeSet;

use proptest::prelude::*;

#[path = "support/differential.rs"]
mod differential;
#[path = "../../core/tests/support/ops.rs"]
mod ops;
#[path = "support/pg.rs"]
mod pg;

use differential::Pair;
use ops::Op;
use proptest::strategy::ValueTree;
use semantica_adapters::PgStore;
use semantica_core::JobState;

/// A pair on a new schema, dropped when the pair goes.
fn pg_pair(seed: u64) -> Pair<PgStore> {
    let schema = pg::TestSchema::new("diff");
    Pair::new(seed, "PgStore", Box::new(move || schema.open()))
}

proptest! {
    // Fewer cases than SQLite's 64: each step is a few dozen round trips to the server.
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// The Postgres store answers every question exactly as the reference store does, and
    /// keeps it all across a reconnect.
    #[test]
    fn postgres_store_matches_the_reference_store(seed: u64, ops in ops::ops(ops::STORE)) {
        let mut pair = pg_pair(seed);
        for op in &ops {
            pair.play(op);
        }
        pair.play(&Op::Restart);
    }
}

/// The random sequences reach every state on Postgres too (else the comparison above
/// proves little).
#[test]
fn postgres_sequences_reach_every_state() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(ops::op(ops::STORE), 150..200);
    let mut states = BTreeSet::new();
    for seed in 0..4 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut pair = pg_pair(seed);
        for op in &ops {
            pair.play(op);
        }
        states.extend(pair.states.iter().copied());
    }
    assert_eq!(states, JobState::ALL.into_iter().collect::<BTreeSet<_>>());
}
