//! `docs/openrpc.json` is the document the types generate, byte for byte.

use std::path::PathBuf;

#[test]
fn the_committed_openrpc_document_is_the_generated_one() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openrpc.json");
    let generated = semantica_client::openrpc::document_text(env!("CARGO_PKG_VERSION"));
    if std::env::var_os("UPDATE_OPENRPC").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/openrpc.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openrpc.json differs from the document the wire types generate; regenerate it with\n  \
         UPDATE_OPENRPC=1 cargo test -p semantica-client --test openrpc_document\nand commit it"
    );
}

/// Every method of the document has params, a result and the contract's error codes.
#[test]
fn every_method_lists_params_result_and_errors() {
    let document = semantica_client::openrpc::document("0.0.0");
    let methods = document["methods"].as_array().unwrap();
    assert_eq!(methods.len(), semantica_client::openrpc::METHODS.len());
    for method in methods {
        assert!(method["params"].is_array(), "{method}");
        assert!(method["result"]["schema"].is_object(), "{method}");
        assert_eq!(method["errors"].as_array().unwrap().len(), 8, "{method}");
    }
    let errors = document["components"]["errors"].as_object().unwrap();
    let mut codes: Vec<i64> = errors.values().map(|e| e["code"].as_i64().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [4000, 4001, 4002, 4003, 4010, 5000, 5001, 5002]);
}
