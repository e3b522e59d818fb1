//! The simulator as a whole: it replays, a short swarm passes, and it catches broken
//! stores end to end.

use semantica_sim::mutant;
use semantica_sim::{run, SimOptions};

/// Runs `seeds` seeds from `first` and returns the reports that failed.
fn swarm(first: u64, seeds: u64, steps: u64, configure: impl Fn(&mut SimOptions)) -> Vec<semantica_sim::RunReport> {
    (first..first + seeds)
        .map(|seed| {
            let mut options = SimOptions::new(seed, steps);
            configure(&mut options);
            run(&options)
        })
        .filter(|report| !report.passed())
        .collect()
}

fn failures_text(reports: &[semantica_sim::RunReport]) -> String {
    reports.iter().filter_map(|report| report.failure_text()).collect::<Vec<_>>().join("\n")
}

#[test]
fn same_seed_gives_the_same_trace_hash() {
    for seed in [0, 1, 42, u64::MAX] {
        let first = run(&SimOptions::new(seed, 400));
        let second = run(&SimOptions::new(seed, 400));
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed} is not deterministic");
        assert_eq!(first.result_line(), second.result_line());
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let a = run(&SimOptions::new(7, 300));
    let b = run(&SimOptions::new(8, 300));
    assert_ne!(a.trace_hash, b.trace_hash);
}

#[test]
fn short_swarm_passes() {
    let failed = swarm(0, 40, 500, |_| {});
    assert!(failed.is_empty(), "{}", failures_text(&failed));
}

#[test]
fn short_swarm_passes_in_differential_mode() {
    let failed = swarm(10_000, 10, 500, |options| options.differential = true);
    assert!(failed.is_empty(), "{}", failures_text(&failed));
}

#[test]
fn result_line_has_the_documented_shape() {
    let report = run(&SimOptions::new(3, 50));
    let line = report.result_line();
    assert!(line.starts_with("SEED=3 steps=50 trace_hash="), "{line}");
    assert!(line.ends_with(" result=ok"), "{line}");
    assert!(report.header_line().starts_with("SEED=3 "), "{}", report.header_line());
}

/// The run fails on some seed, and names `invariants` among its violations.
fn assert_caught(backend: semantica_sim::backend::BackendFactory, invariants: &[&str]) {
    let failed = swarm(0, 20, 1_000, |options| options.backend = backend);
    assert!(!failed.is_empty(), "a broken store went unnoticed");
    let names: Vec<&str> = failed.iter().map(|report| report.violation.as_ref().unwrap().invariant).collect();
    assert!(names.iter().all(|name| invariants.contains(name)), "unexpected violations {names:?}");
}

#[test]
fn simulator_catches_a_store_that_loses_commits() {
    assert_caught(mutant::losing_commits, &["store_diverged"]);
}

#[test]
fn simulator_catches_a_store_that_ignores_priority() {
    assert_caught(mutant::ignoring_priority, &["pop_order"]);
}

#[test]
fn simulator_catches_a_store_that_forgets_cancels() {
    assert_caught(mutant::forgetting_cancels, &["store_diverged"]);
}

#[test]
fn differential_mode_catches_two_stores_that_disagree() {
    let failed = swarm(0, 10, 1_000, |options| {
        options.differential = true;
        options.secondary = mutant::ignoring_priority;
    });
    assert!(!failed.is_empty(), "two disagreeing stores went unnoticed");
    for report in &failed {
        let invariant = report.violation.as_ref().unwrap().invariant;
        assert_eq!(invariant, "differential_mismatch");
    }
}

/// A duplicate of a run's natural end, replaced by a kill, reached the engine before the
/// kill's own report: the engine freed the subject while the process lived (a simulator
/// bug in the executor's duplicate handling, not an engine bug).
#[test]
fn regression_subject_processes_overlap_after_duplicate_end() {
    let report = run(&SimOptions::new(2_000_212, 5_000));
    assert!(report.passed(), "{}", report.failure_text().unwrap_or_default());
}
