//! `store`: the engine and the SQLite store in this process, with no daemon and no wire:
//! what one writer thread can do at most. Every transaction is what the daemon's writer
//! makes of the same work (a batch of enqueues; one report batch of the jobs that ran
//! plus one claim batch), on a temp database under `--dir`. The difference between these figures
//! and the daemon's is what the wire, the executor and the scheduling cost. With
//! `--store-url` the engine runs on the Postgres store instead, in a schema of its own,
//! each drain round one transaction as the daemon's group-commit writer makes it.

#[allow(unused_imports)]
use super::*;

use semantica_core::{Config, Engine, EnqueueRequest, Input, Outcome, Report, SplitMix64};

/// Jobs of the store scenario at `--scale 1`.
const STORE_JOBS: f64 = 200_000.0;
/// Claim batch sizes: the daemon's default on this machine (one per CPU), and a wide one.
const STORE_WORKERS: [usize; 2] = [2, 64];

impl Bench {
    pub(crate) async fn store(&self, run: usize) -> BenchResult<Vec<Row>> {
        let base_dir = match &self.target {
            Target::Fresh { base_dir, .. } => base_dir.clone(),
            Target::Running { .. } => std::env::temp_dir(),
        };
        let jobs = self.size(STORE_JOBS);
        let mut rows = Vec::new();
        for workers in STORE_WORKERS {
            let variant = format!("-w{workers}");
            let home = self.home(&base_dir, "store", run, &variant);
            let pg = match self.target.pg() {
                Some(pg) => Some(pg.schema(schema_name(&self.run_id, run, "store", &variant))?),
                None => None,
            };
            let result = tokio::task::spawn_blocking(move || store_run(&home, pg, jobs, workers))
                .await
                .map_err(|e| format!("store: {e}"))?;
            rows.extend(result?);
        }
        Ok(rows)
    }
}

fn store_run(home: &Path, pg: Option<(PgSchema, String)>, jobs: u64, workers: usize) -> BenchResult<Vec<Row>> {
    let outcome = match &pg {
        Some((_schema, url)) => store_measure_pg(url, jobs, workers),
        None => {
            std::fs::create_dir_all(home).map_err(|e| format!("store: {}: {e}", home.display()))?;
            let outcome = store_measure(&home.join("jobs.db"), jobs, workers);
            let _ = std::fs::remove_dir_all(home);
            outcome
        }
    };
    // The schema goes here, off the async threads.
    drop(pg);
    let (enqueue, drain) = outcome?;
    let parameters =
        |measures: &str| params(&[("measures", json!(measures)), ("jobs", json!(jobs)), ("workers", json!(workers))]);
    let figures = |elapsed: Duration| {
        let mut figures = Map::new();
        figures.insert("jobs_per_s".into(), json!(rate(jobs, elapsed)));
        figures.insert("us_per_job".into(), json!(round3(elapsed.as_secs_f64() * 1e6 / jobs as f64)));
        figures
    };
    let mut rows = vec![Row { scenario: "store", parameters: parameters("drain"), figures: figures(drain) }];
    if workers == STORE_WORKERS[0] {
        let mut enqueue_figures = figures(enqueue);
        enqueue_figures.insert("batch".into(), json!(limits_batch()));
        rows.insert(0, Row { scenario: "store", parameters: parameters("enqueue_batch"), figures: enqueue_figures });
    }
    Ok(rows)
}

fn limits_batch() -> usize {
    semantica_core::limits::BATCH_JOBS_MAX
}

/// [`measure`] on a SQLite file, with the store set up as the daemon's writer has it.
fn store_measure(db_path: &Path, jobs: u64, workers: usize) -> BenchResult<(Duration, Duration)> {
    let mut store = SqliteStore::open(db_path, &SqliteOptions::default())
        .map_err(|e| format!("store: {}: {e}", db_path.display()))?;
    store.connection().execute_batch("PRAGMA temp_store = MEMORY").map_err(|e| format!("store: {e}"))?;
    store.enable_cache(semantica_adapters::sqlite::writer::WriterOptions::default().cache_bytes);
    measure(store, jobs, workers)
}

/// [`measure`] on the Postgres store at `url` (its search path names the schema).
fn store_measure_pg(url: &str, jobs: u64, workers: usize) -> BenchResult<(Duration, Duration)> {
    let store = semantica_adapters::PgStore::open(url, &semantica_adapters::PgOptions::default())
        .map_err(|e| format!("store: the Postgres store: {e}"))?;
    measure(store, jobs, workers)
}

/// Enqueues `jobs` in batches of 1,000 (one transaction each), then drains them: each
/// drain round (the report batch of the jobs the last round started, then a claim batch
/// of `workers`) is one transaction with a savepoint per step, as the daemon's
/// group-commit writer makes it. Returns the two durations.
fn measure<S: semantica_adapters::sqlite::GroupCommitStore>(
    mut store: S,
    jobs: u64,
    workers: usize,
) -> BenchResult<(Duration, Duration)> {
    use semantica_adapters::sqlite::Control;
    let store_error = |e: semantica_core::StoreError| format!("store: {e}");
    let config = Config::new(workers, ["noop"]);
    // The daemon's ids: where a new id lands in the id index is part of an insert's cost.
    let mut engine = Engine::new(config, Box::new(semantica_adapters::UuidIds), Box::new(SplitMix64::new(7)));
    let mut now_ms = now_ms();
    let _recovered = engine.run(now_ms, Input::Recover, &mut store).map_err(store_error)?;

    let started = Instant::now();
    let mut next = 0;
    while next < jobs {
        let last = (next + limits_batch() as u64).min(jobs);
        let requests = (next..last).map(store_request).collect();
        let step = engine.run(now_ms, Input::EnqueueBatch(requests), &mut store).map_err(store_error)?;
        if !matches!(step.reply, semantica_core::Reply::EnqueuedBatch(_)) {
            return Err(format!("store: a batch was answered {:?}", step.reply));
        }
        next = last;
    }
    let enqueue = started.elapsed();

    let started = Instant::now();
    let mut running: Vec<Report> = Vec::new();
    let mut finished = 0;
    // One step under its savepoint, as the writer runs it.
    let step = |engine: &mut Engine, store: &mut S, now_ms: u64, input: Input| {
        store.control(Control::Savepoint).map_err(store_error)?;
        let step = engine.handle(now_ms, input, &*store).map_err(store_error)?;
        store.apply_within(&step.persist).map_err(store_error)?;
        store.control(Control::Release).map_err(store_error)?;
        engine.committed(&step);
        Ok::<_, String>(step)
    };
    while finished < jobs {
        now_ms += 1;
        store.control(Control::Begin).map_err(store_error)?;
        if !running.is_empty() {
            finished += running.len() as u64;
            let reports = std::mem::take(&mut running);
            let _reported = step(&mut engine, &mut store, now_ms, Input::ReportBatch(reports))?;
        }
        let claim = step(&mut engine, &mut store, now_ms, Input::ClaimBatch { queue: None, max: workers })?;
        let semantica_core::Reply::ClaimedBatch(claimed) = claim.reply else {
            return Err("store: a claim batch was not answered with jobs".into());
        };
        store.control(Control::Commit).map_err(store_error)?;
        if claimed.is_empty() && finished < jobs {
            return Err(format!("store: nothing to claim with {finished} of {jobs} finished"));
        }
        running.extend(claimed.iter().map(|job| Report::Finished {
            job_id: job.id,
            attempt: job.attempts,
            outcome: Outcome::Succeeded { exit_code: None, result_summary_json: None, artifacts: Vec::new() },
        }));
    }
    Ok((enqueue, started.elapsed()))
}

fn store_request(index: u64) -> EnqueueRequest {
    EnqueueRequest {
        job_type: Some("noop".into()),
        queue: Some("bench".into()),
        subject_key: Some(format!("subject-{index}")),
        tag: Some("bench-store".into()),
        ..EnqueueRequest::default()
    }
}
