//! `drain` and `subprocess`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `drain` and `subprocess`: jobs enqueued in batches into a paused queue, which is
    /// then resumed; throughput from the first start to the last end, on the daemon's own
    /// clock.
    pub(crate) async fn drain(
        &self,
        run: usize,
        scenario: &'static str,
        base: f64,
        job: fn(&Labels, u64) -> Value,
    ) -> BenchResult<Row> {
        let daemon = self.daemon(scenario, run, "")?;
        let labels = self.labels(scenario, run, "");
        let jobs = self.size(base);
        let figures = self.measure_drain(&daemon, &labels, scenario, jobs, job).await?;
        Ok(Row { scenario, parameters: self.drain_parameters(scenario, jobs), figures })
    }

    pub(crate) fn drain_parameters(&self, scenario: &str, jobs: u64) -> Map<String, Value> {
        let kind = if scenario == "subprocess" { "exec true" } else { "noop" };
        params(&[("jobs", json!(jobs)), ("job", json!(kind)), ("workers", self.target.workers())])
    }

    /// The figures of `drain` (or `subprocess`) on a daemon that is already up; `label`
    /// names the phases in the progress lines.
    pub(crate) async fn measure_drain(
        &self,
        daemon: &Daemon,
        labels: &Labels,
        label: &str,
        jobs: u64,
        job: fn(&Labels, u64) -> Value,
    ) -> BenchResult<Map<String, Value>> {
        // Held back by a pause of their queue: all are QUEUED when it is resumed, and the
        // resume writes one row (a release by event would rewrite every job while the
        // drain runs).
        let queue = json!({"queue": labels.queue});
        call(&daemon.client()?, "admin.queue.pause.v1", &queue, &AtomicU64::new(0)).await?;
        let loaded = enqueue_batches(daemon, labels, jobs, BATCH_CONNECTIONS, job, label).await?;
        let client = daemon.client()?;
        let cpu = daemon.cpu_meter();
        let commits = CommitMeter::start(daemon).await;
        let released_at = Instant::now();
        call(&client, "admin.queue.resume.v1", &queue, &AtomicU64::new(0)).await?;
        let release_elapsed = released_at.elapsed();
        let timeout = Duration::from_secs(120 + jobs / 100);
        let end = wait_counts(&client, &labels.queue, timeout, label, |c| c.open() == 0).await?;
        let wall = released_at.elapsed();
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        commits.figures(daemon, Some(end.done), &mut figures).await;
        let (first_start_ms, last_end_ms) = span_ms(&client, &labels.queue).await?;
        let span = Duration::from_millis(last_end_ms.saturating_sub(first_start_ms).max(1));
        figures.insert("jobs_per_s".into(), json!(rate(end.done, span)));
        figures.insert("done".into(), json!(end.done));
        figures.insert("not_done".into(), json!(end.total() - end.done));
        figures.insert("first_start_to_last_end_s".into(), json!(round3(span.as_secs_f64())));
        figures.insert("release_ms".into(), json!(round3(release_elapsed.as_secs_f64() * 1000.0)));
        figures.insert("release_to_all_ended_s".into(), json!(round3(wall.as_secs_f64())));
        figures.insert("load_jobs_per_s".into(), json!(rate(jobs, loaded.elapsed)));
        self.finish(daemon, labels, &mut figures).await?;
        Ok(figures)
    }
}
