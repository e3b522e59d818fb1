//! `history`, and its prefill through the store port.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `history`: the `enqueue` (1 and 16 connections) and `drain` figures again, one after
    /// another on one daemon whose database held N finished `noop` jobs before it started.
    /// Each `enqueue` phase's jobs are cancelled before the next phase, so what piles up
    /// stays finished.
    pub(crate) async fn history(&self, run: usize) -> BenchResult<Vec<Row>> {
        let Target::Fresh { exe, base_dir, workers, .. } = &self.target else {
            unreachable!("history needs a fresh daemon")
        };
        let home = self.home(base_dir, "history", run, "");
        let done_labels = self.labels("history", run, "-done");
        let history_jobs = self.size(HISTORY_JOBS);
        let seed = now_ms() ^ (u64::from(std::process::id()) << 40) ^ run as u64;
        let prefilled = prefill(&home, &done_labels, history_jobs, seed).await;
        let prefill_elapsed = match prefilled {
            Ok(elapsed) => elapsed,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&home);
                return Err(error);
            }
        };
        let daemon = self.observed(start_daemon(exe, &home, *workers, None)?);
        let client = daemon.client()?;
        let stats_started = Instant::now();
        let stored = counts(&client, &done_labels.queue).await?;
        let stats_elapsed = stats_started.elapsed();
        if stored.done != history_jobs || stored.total() != history_jobs {
            return Err(format!("the daemon sees {stored:?} in the history queue, not {history_jobs} DONE jobs"));
        }
        let mut shared = Map::new();
        shared.insert("history_rows".into(), json!(stored.done));
        shared.insert("prefill_s".into(), json!(round3(prefill_elapsed.as_secs_f64())));
        shared.insert("prefill_rows_per_s".into(), json!(rate(history_jobs, prefill_elapsed)));
        // admin.stats.v1 counts every row; the bench polls it while it waits for a drain.
        shared.insert("stats_ms".into(), json!(round3(stats_elapsed.as_secs_f64() * 1000.0)));
        let with_history = |measures: &str, parameters: Map<String, Value>| {
            let mut all = params(&[("measures", json!(measures)), ("history_jobs", json!(history_jobs))]);
            all.extend(parameters);
            all
        };
        let mut rows = Vec::new();
        for connections in ENQUEUE_CONNECTIONS {
            let labels = self.labels("history", run, &format!("-enqueue-c{connections}"));
            let jobs = self.size(ENQUEUE_JOBS);
            let mut figures = self.measure_enqueue(&daemon, &labels, jobs, connections).await?;
            cancel_tag(&client, &labels.tag).await?;
            figures.extend(shared.clone());
            rows.push(Row {
                scenario: "history",
                parameters: with_history("enqueue", enqueue_parameters(jobs, connections)),
                figures,
            });
        }
        let labels = self.labels("history", run, "-drain");
        let jobs = self.size(DRAIN_JOBS);
        let mut figures = self.measure_drain(&daemon, &labels, "history drain", jobs, noop_job).await?;
        figures.extend(shared);
        rows.push(Row {
            scenario: "history",
            parameters: with_history("drain", self.drain_parameters("drain", jobs)),
            figures,
        });
        Ok(rows)
    }
}

/// Writes `jobs` finished jobs into the database of `home` (which no daemon has open) off
/// the async threads, with progress lines; returns how long it took, closing included.
pub(crate) async fn prefill(home: &Path, labels: &Labels, jobs: u64, seed: u64) -> BenchResult<Duration> {
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    // The daemon's own name for its database (config.rs) when SEMANTICA_DB_PATH is unset,
    // which start_daemon makes sure of.
    let db_path = home.join("jobs.db");
    let progress = Progress::start("history prefill".into(), jobs);
    let (labels, done) = (labels.clone(), Arc::clone(&progress.done));
    tokio::task::spawn_blocking(move || prefill_store(&db_path, &labels, jobs, seed, &done))
        .await
        .map_err(|e| e.to_string())?
}

pub(crate) fn prefill_store(
    db_path: &Path,
    labels: &Labels,
    jobs: u64,
    seed: u64,
    done: &AtomicU64,
) -> BenchResult<Duration> {
    let started = Instant::now();
    let store_error = |e: semantica_core::StoreError| format!("history prefill: {e}");
    let mut store = SqliteStore::open(db_path, &SqliteOptions::default())
        .map_err(|e| format!("history prefill: {}: {e}", db_path.display()))?;
    if store.max_seq().map_err(store_error)? != 0 {
        return Err(format!("history prefill: {} is not empty", db_path.display()));
    }
    let mut ids = SeededIds::new(seed);
    let end_ms = now_ms().saturating_sub(HISTORY_END_AGO_MS);
    let mut first = 0;
    while first < jobs {
        let last = (first + PREFILL_CHUNK_JOBS).min(jobs);
        let writes = (first..last).map(|index| Write::Insert(finished_job(labels, index, jobs, end_ms, &mut ids)));
        store.commit(&WriteSet { writes: writes.collect() }).map_err(store_error)?;
        done.store(last, Ordering::Relaxed);
        first = last;
    }
    let max_seq = store.max_seq().map_err(store_error)?;
    assert_eq!(max_seq, jobs, "the prefill wrote sequences 1..={jobs}");
    drop(store);
    Ok(started.elapsed())
}

/// Job `index` of `jobs`, as the engine leaves a `noop` job of the bench that ran once and
/// succeeded: enqueued, due and started at once, finished a millisecond later. The jobs
/// finish evenly over `HISTORY_SPAN_MS` up to `end_ms`, in `seq` order.
pub(crate) fn finished_job(labels: &Labels, index: u64, jobs: u64, end_ms: u64, ids: &mut SeededIds) -> Job {
    assert!(index < jobs);
    let id = ids.next_id();
    // As the engine draws a trace id when the request has none.
    let trace_id = format!("{:032x}", ids.next_id().as_u128());
    let created_at_ms = end_ms.saturating_sub(HISTORY_SPAN_MS) + index * HISTORY_SPAN_MS / jobs;
    let job = Job {
        seq: index + 1,
        queue: labels.queue.clone(),
        job_type: "noop".to_owned(),
        subject_key: format!("{}-{index}", labels.subject_prefix),
        generation: 1,
        state: JobState::Done,
        attempts: 1,
        tag: Some(labels.tag.clone()),
        trace_id,
        created_at_ms,
        due_at_ms: created_at_ms,
        started_at_ms: Some(created_at_ms + 1),
        finished_at_ms: Some(created_at_ms + 2),
        // Inserts carry version 1 (the store asserts it); the engine's own DONE row would
        // have been updated to a higher one, which no query reads.
        ..Job::blank(id)
    };
    assert!(job.state.is_terminal() && job.wake_at_ms.is_none() && !job.reap_pending);
    assert!(job.attempts <= job.max_attempts);
    job
}

/// Adds to each `history` row `ratio_to_fresh`, its `jobs_per_s` over the same figure of
/// the fresh scenario it repeats, and `meets_0_8`, whether that ratio reaches
/// [`HISTORY_RATIO_MIN`]; when this invocation measured no such fresh figure, neither.
pub(crate) fn compare_history(rows: &mut [Row]) {
    let without = |parameters: &Map<String, Value>, skip: &[&str]| -> Map<String, Value> {
        parameters
            .iter()
            .filter(|(key, _)| !skip.contains(&key.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let fresh: Vec<(String, Map<String, Value>, f64)> = rows
        .iter()
        .filter(|row| row.scenario != "history")
        .filter_map(|row| {
            let jobs_per_s = row.figures.get("jobs_per_s")?.as_f64()?;
            Some((row.scenario.to_owned(), without(&row.parameters, &["runs"]), jobs_per_s))
        })
        .collect();
    for row in rows.iter_mut().filter(|row| row.scenario == "history") {
        let Some(measures) = row.parameters.get("measures").and_then(Value::as_str) else { continue };
        let parameters = without(&row.parameters, &["runs", "measures", "history_jobs"]);
        let Some(fresh_per_s) = fresh
            .iter()
            .find(|(scenario, fresh_parameters, _)| scenario == measures && *fresh_parameters == parameters)
            .map(|(_, _, jobs_per_s)| *jobs_per_s)
            .filter(|jobs_per_s| *jobs_per_s > 0.0)
        else {
            continue;
        };
        let Some(history_per_s) = row.figures.get("jobs_per_s").and_then(Value::as_f64) else { continue };
        let ratio = history_per_s / fresh_per_s;
        row.figures.insert("ratio_to_fresh".into(), json!(round3(ratio)));
        row.figures.insert("meets_0_8".into(), json!(ratio >= HISTORY_RATIO_MIN));
    }
}
