//! The daemon-side fuzz targets of `fuzz/` (`wire_enqueue`, `log_chunk`) on the stable
//! toolchain: proptest feeds them bytes, and every file of their seed corpora runs as a
//! regression. The target functions are not copied: `fuzz/src/edge_targets.rs` (and the
//! core targets and rule checker it calls) are compiled into this test by `#[path]`,
//! exactly as into the fuzz crate. More cases:
//! `PROPTEST_CASES=5000 cargo test --release -p semantica --test fuzz_harness`.

#[path = "../../core/tests/harness/mod.rs"]
mod harness;

#[path = "../../fuzz/src/bytes.rs"]
mod bytes;

#[path = "../../fuzz/src/seed_corpus.rs"]
mod seed_corpus;

#[path = "../../fuzz/src/core_targets.rs"]
#[allow(dead_code)]
mod core_targets;

#[path = "../../fuzz/src/edge_targets.rs"]
mod edge_targets;

#[path = "../../fuzz/src/rpc_targets.rs"]
mod rpc_targets;

use proptest::prelude::*;
use seed_corpus::corpus;

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
    for (path, data) in corpus("rpc_call") {
        eprintln!("rpc_call {}", path.display());
        rpc_targets::rpc_call(&data);
    }
}

/// The harness reaches the methods for real: a valid call succeeds, a bad one is refused
/// with the contract's code.
#[test]
fn the_rpc_target_reaches_the_service() {
    let params = serde_json::json!({"job_type": "noop", "queue": "default", "subject_key": "harness"});
    let answer = rpc_targets::call("dev.enqueue.v1", Some(params)).expect("a request");
    let id = answer["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned();
    let got = rpc_targets::call("dev.get.v1", Some(serde_json::json!({"job_id": id}))).expect("a request");
    assert_eq!(got["result"]["subject_key"], "harness", "{got}");
    let refused = rpc_targets::call("dev.get.v1", Some(serde_json::json!({"job_id": 5}))).expect("a request");
    assert_eq!(refused["error"]["code"], 4000, "{refused}");
    let unknown = rpc_targets::call("no.such.method.v1", None).expect("a request");
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
}

/// A method and params with the fields the methods know, of any type, so that the
/// wire's checks of every method are reached (random bytes are rarely JSON).
fn rpc_json() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (0u64..400).prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "[a-z0-9_.:-]{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("00000000-0000-4000-8000-000000000000")),
        Just(serde_json::json!(["QUEUED", "DONE"])),
        Just(serde_json::json!({"state": ["RUNNING"], "queue": ["default"]})),
    ];
    let keys = prop::sample::select(vec![
        "job_id",
        "timeout_ms",
        "tag",
        "chain_group_id",
        "name",
        "offset",
        "limit",
        "filter",
        "sort",
        "cursor",
        "force_vacuum",
        "jobs",
        "job_type",
        "queue",
        "subject_key",
        "bogus",
    ]);
    (any::<u8>(), prop::collection::btree_map(keys, value, 0..6)).prop_map(|(method, fields)| {
        let object: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        let mut data = vec![method];
        data.extend(serde_json::to_vec(&object).unwrap());
        data
    })
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

    #[test]
    fn any_params_to_any_method_get_a_contract_answer(data in rpc_json()) {
        rpc_targets::rpc_call(&data);
    }

    #[test]
    fn any_bytes_to_any_method_get_a_contract_answer(data in prop::collection::vec(any::<u8>(), 0..256)) {
        rpc_targets::rpc_call(&data);
    }
}
