//! `semantica bench` end to end at a tiny scale: every scenario runs against the real
//! daemon it starts and reports positive figures. No figure is compared with a target:
//! the machine is shared and a timed assertion would only measure the neighbours.

mod common;

use std::process::Command;

use common::test_pg_url;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_semantica");

/// The figure each scenario must report, besides the daemon's peak RSS.
const MAIN_FIGURE: [(&str, &str); 8] = [
    ("enqueue", "jobs_per_s"),
    ("enqueue_batch", "jobs_per_s"),
    ("drain", "jobs_per_s"),
    ("e2e", "jobs_per_s"),
    ("subprocess", "jobs_per_s"),
    ("supersede_storm", "ran"),
    ("restart", "serve_ms"),
    ("history", "jobs_per_s"),
];

#[test]
fn bench_runs_every_scenario_and_writes_positive_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (report, stdout, _) = run_bench(&[], dir.path());
    assert!(stdout.contains("jobs/s") && stdout.contains("supersede_storm"), "no table on stdout: {stdout}");

    assert_eq!(report["failed"], serde_json::json!([]), "{report:#}");
    let rows = report["scenarios"].as_array().expect("a list of scenarios");
    for (scenario, figure) in MAIN_FIGURE {
        let mine: Vec<&Value> = rows.iter().filter(|row| row["scenario"] == scenario).collect();
        assert!(!mine.is_empty(), "{scenario} is missing from {report:#}");
        for row in mine {
            assert!(row["parameters"].is_object(), "{row}");
            let positive = |key: &str| row["figures"][key].as_f64().is_some_and(|x| x > 0.0);
            assert!(positive(figure), "{scenario}: {figure} is not positive: {row}");
            assert!(positive("peak_rss_mib"), "{scenario}: no peak RSS: {row}");
            if ["enqueue", "enqueue_batch", "drain"].contains(&scenario) {
                // The daemon's own count of the transactions that carried the jobs.
                assert!(positive("commits") && positive("commit_us_mean"), "{scenario}: no commits: {row}");
                let per_commit = row["figures"]["jobs_per_commit"].as_f64().unwrap_or(0.0);
                let jobs = row["parameters"]["jobs"].as_f64().expect("the scenario's jobs");
                assert!(per_commit > 0.0 && per_commit <= jobs, "{scenario}: jobs_per_commit {per_commit}: {row}");
            }
        }
    }
    let enqueue_connections: Vec<u64> = rows
        .iter()
        .filter(|row| row["scenario"] == "enqueue")
        .filter_map(|row| row["parameters"]["connections"].as_u64())
        .collect();
    assert_eq!(enqueue_connections, [1, 16], "enqueue runs with 1 and with 16 connections");
    check_history(rows);
    // Every temp home was removed; only the JSON is left.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("bench.json")], "leftovers: {left:?}");
}

/// `history` repeats enqueue (1 and 16 connections) and drain over 1,000 × 1 prefilled
/// DONE jobs, reads them back, and compares with the fresh figures of the same run.
fn check_history(rows: &[Value]) {
    let history: Vec<&Value> = rows.iter().filter(|row| row["scenario"] == "history").collect();
    let measures: Vec<(&str, Option<u64>)> = history
        .iter()
        .map(|row| (row["parameters"]["measures"].as_str().unwrap(), row["parameters"]["connections"].as_u64()))
        .collect();
    assert_eq!(measures, [("enqueue", Some(1)), ("enqueue", Some(16)), ("drain", None)], "{history:#?}");
    for row in history {
        assert_eq!(row["parameters"]["history_jobs"], 1000, "--scale 0.001 of 1,000,000: {row}");
        assert!(row["figures"]["history_rows"].as_u64().is_some_and(|n| n >= 1000), "history not read back: {row}");
        assert!(row["figures"]["prefill_s"].as_f64().is_some_and(|s| s > 0.0), "{row}");
        assert!(row["figures"]["ratio_to_fresh"].as_f64().is_some_and(|r| r > 0.0), "no ratio: {row}");
        assert!(row["figures"]["meets_0_8"].is_boolean(), "{row}");
    }
}

#[test]
fn an_unknown_scenario_is_refused_before_anything_starts() {
    let output = Command::new(BIN).args(["bench", "--scenario", "warp_speed"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown scenario \"warp_speed\""), "{stderr}");
}

/// `--observe` scrapes `/metrics` and keeps a dashboard open while a scenario runs, and
/// says how often each answered, next to the scenario's own figures.
#[test]
fn observe_scrapes_and_polls_the_dashboard_while_a_scenario_runs() {
    let dir = tempfile::tempdir().unwrap();
    // e2e runs for at least a second: long enough for the first scrape and refresh.
    let (report, _, _) = run_bench(&["--scenario", "e2e", "--observe"], dir.path());
    assert_eq!(report["observe"], true, "{report:#}");
    let row = &report["scenarios"][0];
    assert_eq!(row["scenario"], "e2e", "{report:#}");
    let figure = |key: &str| row["figures"][key].as_u64().unwrap_or_else(|| panic!("no {key} in {row}"));
    assert_eq!(figure("observe_errors"), 0, "{row}");
    assert!(figure("observe_scrapes") >= 1, "{row}");
    assert!(figure("observe_dashboard_polls") >= 1, "{row}");
    assert!(row["figures"]["jobs_per_s"].as_f64().is_some_and(|x| x > 0.0), "{row}");
}

/// `semantica bench --scale 0.001 --dir DIR ARGS --json DIR/bench.json`, which must
/// succeed: the report, stdout and stderr.
fn run_bench(args: &[&str], dir: &std::path::Path) -> (Value, String, String) {
    let json_path = dir.join("bench.json");
    let output = Command::new(BIN)
        .args(["bench", "--scale", "0.001", "--dir"])
        .arg(dir)
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .env_remove("SEMANTICA_HOME")
        .env_remove("SEMANTICA_TOKEN")
        .env_remove("SEMANTICA_STORE_URL")
        .output()
        .expect("run semantica bench");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "semantica bench failed: {}\n{stderr}", output.status);
    let report = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    (report, String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// [`run_bench`] on the test cluster: the report, after checking that the bench never
/// printed the store URL (it may hold a password).
fn bench_json(args: &[&str], dir: &std::path::Path) -> Value {
    let (report, _, stderr) = run_bench(args, dir);
    assert!(!stderr.contains(&test_pg_url()), "the bench printed the store URL:\n{stderr}");
    report
}

/// `--store-url`: every scenario's fresh daemon (and `store`'s engine) runs on Postgres,
/// in a schema of its own, and reports positive figures; `history` (a SQLite prefill) is
/// skipped. Every temp home is removed.
#[test]
fn bench_runs_its_scenarios_on_postgres_with_store_url() {
    let url = test_pg_url();
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(&["--store-url", &url], dir.path());
    assert_eq!(report["failed"], serde_json::json!([]), "{report:#}");
    let rows = report["scenarios"].as_array().expect("a list of scenarios");
    for (scenario, figure) in MAIN_FIGURE.iter().filter(|(scenario, _)| *scenario != "history") {
        let mine: Vec<&Value> = rows.iter().filter(|row| row["scenario"] == *scenario).collect();
        assert!(!mine.is_empty(), "{scenario} is missing from {report:#}");
        for row in mine {
            assert_eq!(row["parameters"]["store"], "postgres", "{row}");
            assert_eq!(row["parameters"]["daemons"], 1, "{row}");
            assert!(row["figures"][figure].as_f64().is_some_and(|x| x > 0.0), "{scenario}: {figure}: {row}");
        }
    }
    assert!(!rows.iter().any(|row| row["scenario"] == "history"), "history runs on SQLite only: {report:#}");
    let store: Vec<&Value> = rows.iter().filter(|row| row["scenario"] == "store").collect();
    assert_eq!(store.len(), 3, "{report:#}");
    for row in store {
        assert_eq!(row["parameters"]["store"], "postgres", "{row}");
        assert!(row["figures"]["jobs_per_s"].as_f64().is_some_and(|x| x > 0.0), "{row}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("bench.json")], "leftovers: {left:?}");
    // Every scenario's schema was dropped.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let schemas: Vec<String> = client
        .query("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, 'bench_')", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(schemas, Vec::<String>::new(), "schemas left behind");
}

/// `--daemons 3`: three daemons on one schema, clients spread over them, every job of
/// the scenarios acknowledged and DONE (enqueues that race on the sequence are decided
/// again by the writer, not refused).
#[test]
fn bench_runs_three_daemons_on_one_postgres_schema() {
    let url = test_pg_url();
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(
        &["--store-url", &url, "--daemons", "3", "--scenario", "enqueue", "--scenario", "drain"],
        dir.path(),
    );
    assert_eq!(report["failed"], serde_json::json!([]), "{report:#}");
    let rows = report["scenarios"].as_array().expect("a list of scenarios");
    assert!(rows.len() >= 3, "{report:#}");
    for row in rows {
        assert_eq!(row["parameters"]["daemons"], 3, "{row}");
        assert!(row["figures"]["jobs_per_s"].as_f64().is_some_and(|x| x > 0.0), "{row}");
    }
    let drain = rows.iter().find(|row| row["scenario"] == "drain").expect("a drain row");
    assert_eq!(drain["figures"]["not_done"], 0, "{drain}");
}

/// `--daemons` needs a shared database and is at most 3.
#[test]
fn bench_refuses_several_daemons_without_a_shared_database() {
    let output = Command::new(BIN).args(["bench", "--daemons", "2", "--scenario", "e2e"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--daemons above 1 needs --store-url"));
    let output = Command::new(BIN)
        .args(["bench", "--store-url", "postgres://localhost/x", "--daemons", "4", "--scenario", "e2e"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--daemons 4: want 1 to 3"));
}
