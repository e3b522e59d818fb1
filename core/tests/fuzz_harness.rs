//! The core-only fuzz targets of `fuzz/` (`engine_ops`, `enqueue_request`) on the stable
//! toolchain: proptest feeds them arbitrary bytes, and every file of their seed corpora
//! runs as a regression. The target functions are not copied: `fuzz/src/core_targets.rs`
//! is compiled into this test by `#[path]`, next to the rule checker of `harness/` that
//! it drives (the fuzz crate includes the same two files the same way), so a libFuzzer
//! finding and this test run one and the same code. More cases:
//! `PROPTEST_CASES=5000 cargo test --release -p semantica-core --test fuzz_harness`.

mod harness;

#[path = "../../fuzz/src/bytes.rs"]
mod bytes;

#[path = "../../fuzz/src/seed_corpus.rs"]
mod seed_corpus;

#[path = "../../fuzz/src/core_targets.rs"]
mod core_targets;

use proptest::prelude::*;
use seed_corpus::corpus;

#[test]
fn the_seed_corpora_pass() {
    for (path, data) in corpus("engine_ops") {
        eprintln!("engine_ops {}", path.display());
        core_targets::engine_ops(&data);
    }
    for (path, data) in corpus("enqueue_request") {
        eprintln!("enqueue_request {}", path.display());
        core_targets::enqueue_request(&data);
    }
}

proptest! {
    #[test]
    fn any_bytes_drive_the_engine_without_breaking_a_rule(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        core_targets::engine_ops(&data);
    }

    #[test]
    fn any_enqueue_request_is_validated_without_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        core_targets::enqueue_request(&data);
    }

    /// Requests cut at 0xFF bytes: fields land where the target reads them.
    #[test]
    fn any_fielded_enqueue_request_is_validated_without_panic(
        fields in prop::collection::vec(prop::collection::vec(0u8..0xFF, 0..12), 0..20),
    ) {
        core_targets::enqueue_request(&fields.join(&0xFF));
    }
}
