//! The store's fuzz target of `fuzz/` (`hostile_database`) on the stable toolchain:
//! proptest feeds it bytes, and every file of its seed corpus runs as a regression. The
//! target function is not copied: `fuzz/src/store_targets.rs` is compiled into this test
//! by `#[path]`, exactly as into the fuzz crate. More cases:
//! `PROPTEST_CASES=5000 cargo test --release -p semantica-adapters --test fuzz_harness`.

#[path = "../../fuzz/src/bytes.rs"]
mod bytes;

#[path = "../../fuzz/src/seed_corpus.rs"]
mod seed_corpus;

#[path = "../../fuzz/src/store_targets.rs"]
mod store_targets;

use std::path::PathBuf;

use proptest::prelude::*;
use seed_corpus::corpus;

/// Every seed runs, also after one has panicked, so that one failure names them all.
#[test]
fn the_seed_corpus_passes() {
    let panicked: Vec<PathBuf> = corpus("hostile_database")
        .into_iter()
        .filter(|(path, data)| {
            eprintln!("hostile_database {}", path.display());
            std::panic::catch_unwind(|| store_targets::hostile_database(data)).is_err()
        })
        .map(|(path, _)| path)
        .collect();
    assert!(panicked.is_empty(), "panicked on {panicked:#?}");
}

proptest! {
    #[test]
    fn any_bytes_as_a_database_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        store_targets::hostile_database(&data);
    }

    /// Modes 1 to 3 start from a real database, so that nearly every case opens and reads.
    #[test]
    fn any_damage_to_a_real_database_never_panics(
        mode in 1u8..4,
        damage in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let data: Vec<u8> = std::iter::once(mode).chain(damage).collect();
        store_targets::hostile_database(&data);
    }
}
