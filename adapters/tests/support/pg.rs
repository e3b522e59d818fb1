//! The test cluster of the Postgres store's tests: its URL, and a fresh schema per test
//! so that tests run in parallel on one database.
//!
//! The URL comes from `SEMANTICA_TEST_PG_URL`, which `.ci/postgres.sh` exports. Without
//! it a test fails with the command that provides it: never a pass by skipping.

#![allow(dead_code)] // each test binary uses a part

use std::sync::atomic::{AtomicU64, Ordering};

use semantica_adapters::{PgOptions, PgStore};

/// The test cluster's URL, or a failure that says how to get one.
pub fn url() -> String {
    match std::env::var("SEMANTICA_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            panic!(
                "SEMANTICA_TEST_PG_URL is not set{}: this test needs a Postgres server. Start the test cluster \
                 with `source .ci/postgres.sh` (it installs Debian's postgresql if needed, starts a throwaway \
                 cluster and exports the URL), then run the tests from that shell.",
                if ci { " under CI=true (.ci/run sources .ci/postgres.sh before the tests)" } else { "" }
            )
        }
    }
}

/// A schema of its own for one test, dropped with everything in it when the guard goes.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// `label`: lower-case letters, digits and `_`, to find a leftover schema's test.
    pub fn new(label: &str) -> TestSchema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("t_{label}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        assert!(name.len() <= 63, "schema name {name} is too long for Postgres");
        TestSchema { url: url(), name }
    }

    pub fn options(&self) -> PgOptions {
        PgOptions { schema: Some(self.name.clone()) }
    }

    /// A store on this schema (migrated at the first open).
    pub fn open(&self) -> PgStore {
        PgStore::open(&self.url, &self.options()).unwrap_or_else(|e| panic!("open {}: {e}", self.name))
    }

    /// A plain connection with this schema first on the search path.
    pub fn client(&self) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test cluster");
        client.batch_execute(&format!("SET search_path TO \"{}\"", self.name)).unwrap();
        client
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Best effort: the CI cluster is thrown away anyway; a developer's is kept tidy.
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}
