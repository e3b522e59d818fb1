//! The client has a method for every method that `docs/openrpc.json` publishes.

#[test]
fn the_client_has_every_published_method() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openrpc.json");
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let table: Vec<&str> = semantica_client::METHODS.iter().map(|(wire, _)| *wire).collect();
    let missing: Vec<&str> = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|method| method["name"].as_str().unwrap())
        .filter(|name| !table.contains(name))
        .collect();
    assert!(missing.is_empty(), "docs/openrpc.json has methods the Rust client lacks: {missing:?}");
    assert_eq!(
        table.len(),
        document["methods"].as_array().unwrap().len(),
        "the table names no method the document lacks"
    );
}
