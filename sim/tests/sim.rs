//! The simulator as a whole: it replays, a short swarm passes on every store and in
//! differential mode (memory against SQLite, Postgres against memory), and it catches
//! broken stores end to end.

use semantica_core::{Config, EnqueueRequest, Input, Reply, SeededIds, SplitMix64, Store};
use semantica_sim::backend::{all_jobs, Backend};
use semantica_sim::mutant;
use semantica_sim::sim::START_MS;
use semantica_sim::{run, BackendKind, SimOptions, SqliteBackend};

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
fn short_differential_swarm_of_memory_against_sqlite_passes() {
    let failed = swarm(10_000, 10, 500, |options| options.differential = true);
    assert!(failed.is_empty(), "{}", failures_text(&failed));
    let report = run(&SimOptions { differential: true, ..SimOptions::new(10_000, 50) });
    assert_eq!((report.backend, report.secondary), ("memstore", Some("sqlite")));
}

#[test]
fn short_swarm_passes_on_sqlite() {
    let failed = swarm(20_000, 6, 500, |options| *options = SimOptions::on(BackendKind::Sqlite, options.seed, 500));
    assert!(failed.is_empty(), "{}", failures_text(&failed));
}

/// The store only stores: ids, sequence numbers and times come from the engine, so the
/// same seed gives the same trace on SQLite, twice, and the same as on `MemStore`.
#[test]
fn sqlite_backend_gives_the_same_trace_hash_as_memory() {
    for seed in [0, 42, 30_001] {
        let memory = run(&SimOptions::new(seed, 600));
        let sqlite = run(&SimOptions::on(BackendKind::Sqlite, seed, 600));
        let again = run(&SimOptions::on(BackendKind::Sqlite, seed, 600));
        assert!(sqlite.passed(), "{}", sqlite.failure_text().unwrap_or_default());
        assert_eq!(sqlite.trace_hash, again.trace_hash, "seed {seed} is not deterministic on SQLite");
        assert_eq!(sqlite.trace_hash, memory.trace_hash, "seed {seed}: SQLite changed the run");
        assert_eq!(sqlite.backend, "sqlite");
    }
}

/// Crash-heavy seeds on SQLite: every restart reopens the files a killed process leaves,
/// and the checker compares what reopened with the committed writes before recovery.
#[test]
fn sqlite_survives_the_simulated_crashes_of_a_swarm() {
    let mut crashes = 0;
    for seed in 40_000..40_012 {
        let report = run(&SimOptions { differential: true, ..SimOptions::on(BackendKind::Sqlite, seed, 800) });
        assert!(report.passed(), "{}", report.failure_text().unwrap_or_default());
        // The first restart is the start itself.
        crashes += report.stats.crashes - 1;
    }
    assert!(crashes >= 5, "only {crashes} crashes: the swarm no longer tests reopening");
}

/// The same seeds on Postgres (`SEMANTICA_TEST_PG_URL`, from `source .ci/postgres.sh`):
/// the trace of each is the one on `MemStore`, and crashes (a dropped connection and a
/// new one) bring back exactly what was committed, compared with MemStore step by step.
#[test]
fn postgres_backend_gives_the_same_trace_hash_as_memory_and_survives_crashes() {
    assert!(
        std::env::var("SEMANTICA_TEST_PG_URL").is_ok_and(|url| !url.is_empty()),
        "SEMANTICA_TEST_PG_URL is not set: run `source .ci/postgres.sh` (it starts a throwaway Postgres cluster \
         and exports the URL), then the tests from that shell"
    );
    for seed in [0, 42, 30_001] {
        let memory = run(&SimOptions::new(seed, 600));
        let postgres = run(&SimOptions::on(BackendKind::Postgres, seed, 600));
        assert!(postgres.passed(), "{}", postgres.failure_text().unwrap_or_default());
        assert_eq!(postgres.trace_hash, memory.trace_hash, "seed {seed}: Postgres changed the run");
        assert_eq!(postgres.backend, "postgres");
    }
    let mut crashes = 0;
    for seed in 40_000..40_006 {
        let report = run(&SimOptions { differential: true, ..SimOptions::on(BackendKind::Postgres, seed, 800) });
        assert!(report.passed(), "{}", report.failure_text().unwrap_or_default());
        assert_eq!((report.backend, report.secondary), ("postgres", Some("memstore")));
        crashes += report.stats.crashes - 1;
    }
    assert!(crashes >= 2, "only {crashes} crashes: the swarm no longer tests reconnecting");
}

fn enqueue(subject: &str) -> Input {
    Input::Enqueue(Box::new(EnqueueRequest {
        job_type: Some("work".into()),
        queue: Some("default".into()),
        subject_key: Some(subject.into()),
        ..EnqueueRequest::default()
    }))
}

#[test]
fn sqlite_reopen_shows_exactly_the_committed_jobs_and_the_directory_goes_on_drop() {
    let mut backend = SqliteBackend::create().expect("a temporary SQLite store");
    let mut engine = semantica_core::Engine::new(
        Config::new(1, ["work"]),
        Box::new(SeededIds::new(1)),
        Box::new(SplitMix64::new(1)),
    );
    let _recovered = engine.run(START_MS, Input::Recover, &mut backend).expect("recover");
    for (n, subject) in ["a", "b", "c"].into_iter().enumerate() {
        let step = engine.run(START_MS + n as u64, enqueue(subject), &mut backend).expect("enqueue commits");
        assert!(matches!(step.reply, Reply::Enqueued(_)), "{:?}", step.reply);
    }
    let committed = all_jobs(&backend).expect("readable");
    assert_eq!(committed.len(), 3);
    // The writes sit in the WAL, not yet in the database file: the crash image must carry it.
    let wal = backend.path().with_extension("db-wal");
    assert!(wal.exists(), "no WAL at {}", wal.display());
    for _ in 0..3 {
        backend.reopen().expect("reopens");
        assert_eq!(all_jobs(&backend).expect("readable"), committed);
        assert_eq!(backend.max_seq().expect("readable"), committed.last().unwrap().seq);
    }
    assert_eq!(backend.reopens(), 3);
    let directory = backend.path().parent().unwrap().to_path_buf();
    assert!(directory.exists());
    drop(backend);
    assert!(!directory.exists(), "{} is left behind", directory.display());
}

/// A recurring job's request goes through JSON in the SQLite store; serde_json without
/// `float_roundtrip` read a 17-digit float back as a nearby one (the simulator found it as
/// store_diverged). The store must hold exactly what was committed.
#[test]
fn regression_a_recurring_backoff_factor_reads_back_bit_for_bit() {
    let mut backend = SqliteBackend::create().expect("a temporary SQLite store");
    let factor = 1.0 + 103.0 / 100.0;
    assert_eq!(factor.to_string(), "2.0300000000000002");
    let recurring = semantica_core::Recurring {
        name: "r".to_owned(),
        cron: "* * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        job: EnqueueRequest {
            job_type: Some("work".into()),
            backoff: Some(semantica_core::BackoffRequest { factor: Some(factor), ..Default::default() }),
            ..EnqueueRequest::default()
        },
        next_at_ms: Some(START_MS),
        last_slot_ms: None,
        last_enqueued_job_id: None,
    };
    let put = semantica_core::WriteSet { writes: vec![semantica_core::Write::PutRecurring(recurring)] };
    backend.commit(&put).expect("commits");
    let stored = backend.recurring("r").expect("readable").expect("stored");
    let stored_factor = stored.job.backoff.and_then(|backoff| backoff.factor).expect("a factor");
    assert_eq!(stored_factor.to_bits(), factor.to_bits(), "read back {stored_factor}");
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
fn simulator_catches_a_store_that_hides_due_recurring_jobs() {
    assert_caught(mutant::hiding_due_recurring, &["recurring_slot_missed"]);
}

/// The engine reads pauses from the store only at recovery: a store that loses them in a
/// crash is caught comparing the reopened store with the committed writes, or by the
/// jobs the recovered engine then starts in a paused queue.
#[test]
fn simulator_catches_a_store_that_forgets_pauses_in_a_crash() {
    assert_caught(mutant::forgetting_pauses_on_reopen, &["store_diverged", "started_while_paused"]);
}

/// SQLite on one side, a store that ignores priority on the other: every step's answers
/// are compared, and the claim order gives the mutant away.
#[test]
fn differential_mode_catches_a_store_that_disagrees_with_sqlite() {
    let failed = swarm(0, 10, 1_000, |options| {
        *options = SimOptions::on(BackendKind::Sqlite, options.seed, options.steps);
        options.differential = true;
        options.secondary = mutant::ignoring_priority;
    });
    assert!(!failed.is_empty(), "SQLite and a disagreeing store went unnoticed");
    for report in &failed {
        let violation = report.violation.as_ref().unwrap();
        assert_eq!(violation.invariant, "differential_mismatch", "{violation}");
        assert!(report.replay_command().contains("--backend sqlite --differential"), "{}", report.replay_command());
    }
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
