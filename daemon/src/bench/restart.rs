//! `restart`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `restart`: a home with N waiting jobs (held by an event that never comes), the
    /// daemon stopped, then the time from `serve` to the first answered call.
    pub(crate) async fn restart(&self, run: usize) -> BenchResult<Row> {
        let Target::Fresh { exe, workers, .. } = &self.target else { unreachable!("restart needs a fresh daemon") };
        let mut first = self.daemon("restart", run, "")?;
        let labels = self.labels("restart", run, "");
        let jobs = self.size(RESTART_JOBS);
        let event = format!("{}-never", labels.queue);
        let held = move |labels: &Labels, index: u64| {
            let mut value = noop_job(labels, index);
            value["conditions"] = json!({"wait_for_event": event});
            value
        };
        let loaded = enqueue_batches(&first, &labels, jobs, BATCH_CONNECTIONS, held, "restart load").await?;
        let client = first.client()?;
        let probe = call(
            &client,
            "dev.query_jobs.v1",
            &json!({"filter": {"queue": [labels.queue]}, "limit": 1}),
            &AtomicU64::new(0),
        )
        .await?;
        let job_id = probe["items"][0]["id"].clone();
        let first_peak_mib = first.peak_rss_mib();
        first.stop()?;
        let home = first.home.take().expect("a fresh daemon has a home");
        // On Postgres the schema outlives the first daemon (and its peers, stopped too).
        let (schema, store_url) = (first.schema.take(), first.store_url.take());
        drop(first);
        let started = Instant::now();
        let mut second = self.observed(start_daemon(exe, &home, *workers, store_url.as_deref())?);
        second.schema = schema;
        let daemon_json = started.elapsed();
        let client = second.client()?;
        let answered = loop {
            match client.call::<_, Value>("dev.get.v1", &params(&[("job_id", job_id.clone())])).await {
                Ok(_) => break started.elapsed(),
                Err(ClientError::DaemonNotRunning(_) | ClientError::Transport(_))
                    if started.elapsed() < START_TIMEOUT =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(error) => return Err(format!("the restarted daemon did not answer: {error}")),
            }
        };
        let counts_after = counts(&client, &labels.queue).await?;
        if counts_after.scheduled != jobs {
            return Err(format!("after the restart {} of {jobs} jobs are still waiting", counts_after.scheduled));
        }
        let mut figures = Map::new();
        figures.insert("serve_ms".into(), json!(round3(answered.as_secs_f64() * 1000.0)));
        figures.insert("daemon_json_ms".into(), json!(round3(daemon_json.as_secs_f64() * 1000.0)));
        figures.insert("load_jobs_per_s".into(), json!(rate(jobs, loaded.elapsed)));
        if let Some(mib) = first_peak_mib {
            figures.insert("load_peak_rss_mib".into(), json!(round3(mib)));
        }
        let size = |name: &str| std::fs::metadata(home.join(name)).map(|m| m.len()).unwrap_or(0);
        let db_bytes = size("jobs.db") + size("jobs.db-wal");
        figures.insert("db_mib".into(), json!(round3(db_bytes as f64 / 1024.0 / 1024.0)));
        second.home = Some(home);
        self.finish(&second, &labels, &mut figures).await?;
        Ok(Row { scenario: "restart", parameters: params(&[("jobs_waiting", json!(jobs))]), figures })
    }
}
