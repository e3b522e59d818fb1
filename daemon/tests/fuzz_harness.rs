//! The daemon-side fuzz targets of `fuzz/` (`wire_enqueue`, `log_chunk`) on the stable
//! toolchain: proptest feeds them bytes, and every file of their seed corpora runs as a
//! regression. The target functions are not copied: `fuzz/src/edge_targets.rs` (and the
//! core targets and rule checker it calls) are compiled into this test by `#[path]`,
//! exactly as into the fuzz crate. More cases:
//! `PROPTEST_CASES=5000 cargo test --release -p semantica --test fuzz_harness`.

#[path = "../../core/tests/harness/mod.rs"]
mod harness;

#[path = "../../fuzz/src/core_targets.rs"]
#[allow(dead_code)]
mod core_targets;

#[path = "../../fuzz/src/edge_targets.rs"]
mod edge_targets;

use std::path::PathBuf;

use proptest::prelude::*;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seed corpus in {}", dir.display());
    files
}

#[test]
fn the_seed_corpora_pass() {
    for (path, data) in corpus("wire_enqueue") {
        eprintln!("wire_enqueue {}", path.display());
        edge_targets::wire_enqueue(&data);
    }
    for (path, data) in corpus("log_chunk") {
        eprintln!("log_chunk {}", path.display());
        edge_targets::log_chunk(&data);
    }
}

/// JSON objects with enqueue-like fields of any type, so that the wire's type checks and
/// core's validation both get reached (random bytes are rarely JSON).
fn enqueue_json() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "[a-z0-9_.:-]{0,70}".prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let keys = prop::sample::select(vec![
        "job_type",
        "queue",
        "subject_key",
        "generation",
        "payload",
        "priority",
        "max_attempts",
        "timeout_ms",
        "ttl_ms",
        "deadline",
        "tag",
        "chain_group_id",
        "trace_id",
        "parent_job_id",
        "bogus",
    ]);
    prop::collection::btree_map(keys, value, 0..10).prop_map(|fields| {
        let mut object: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        object.entry("job_type").or_insert_with(|| "noop".into());
        serde_json::to_vec(&object).unwrap()
    })
}

proptest! {
    #[test]
    fn any_bytes_as_enqueue_params_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        edge_targets::wire_enqueue(&data);
    }

    #[test]
    fn any_enqueue_shaped_json_never_panics(data in enqueue_json()) {
        edge_targets::wire_enqueue(&data);
    }

    #[test]
    fn any_log_reads_back_whole(data in prop::collection::vec(any::<u8>(), 0..600)) {
        edge_targets::log_chunk(&data);
    }
}
