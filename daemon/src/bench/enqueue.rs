//! `enqueue` and `enqueue_batch`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `enqueue`: single calls of jobs due tomorrow, so no worker competes with them.
    pub(crate) async fn enqueue(&self, run: usize, connections: usize) -> BenchResult<Row> {
        let variant = format!("-c{connections}");
        let daemon = self.daemon("enqueue", run, &variant)?;
        let labels = self.labels("enqueue", run, &variant);
        let jobs = self.size(ENQUEUE_JOBS);
        let figures = self.measure_enqueue(&daemon, &labels, jobs, connections).await?;
        Ok(Row { scenario: "enqueue", parameters: enqueue_parameters(jobs, connections), figures })
    }

    /// The figures of `enqueue` on a daemon that is already up.
    pub(crate) async fn measure_enqueue(
        &self,
        daemon: &Daemon,
        labels: &Labels,
        jobs: u64,
        connections: usize,
    ) -> BenchResult<Map<String, Value>> {
        let at_ms = now_ms() + FAR_FUTURE_MS;
        let template = move |labels: &Labels, index: u64| {
            let mut job = noop_job(labels, index);
            job["schedule"] = json!({"at": at_ms});
            job
        };
        let cpu = daemon.cpu_meter();
        let commits = CommitMeter::start(daemon).await;
        let outcome = enqueue_singly(daemon, labels, jobs, connections, template, "enqueue").await?;
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        commits.figures(daemon, Some(jobs), &mut figures).await;
        figures.insert("jobs_per_s".into(), json!(rate(jobs, outcome.elapsed)));
        latency_figures(&mut figures, outcome.latencies_us, "");
        figures.insert("throttled".into(), json!(outcome.throttled));
        self.finish(daemon, labels, &mut figures).await?;
        Ok(figures)
    }

    /// `enqueue_batch`: `dev.enqueue_batch.v1` of 1,000 jobs due tomorrow.
    pub(crate) async fn enqueue_batch(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("enqueue_batch", run, "")?;
        let labels = self.labels("enqueue_batch", run, "");
        let jobs = self.size(BATCH_TOTAL_JOBS);
        let at_ms = now_ms() + FAR_FUTURE_MS;
        let template = move |labels: &Labels, index: u64| {
            let mut job = noop_job(labels, index);
            job["schedule"] = json!({"at": at_ms});
            job
        };
        let cpu = daemon.cpu_meter();
        let commits = CommitMeter::start(&daemon).await;
        let outcome = enqueue_batches(&daemon, &labels, jobs, BATCH_CONNECTIONS, template, "enqueue_batch").await?;
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        commits.figures(&daemon, Some(jobs), &mut figures).await;
        figures.insert("jobs_per_s".into(), json!(rate(jobs, outcome.elapsed)));
        latency_figures(&mut figures, outcome.latencies_us, "batch_");
        figures.insert("throttled".into(), json!(outcome.throttled));
        self.finish(&daemon, &labels, &mut figures).await?;
        Ok(Row {
            scenario: "enqueue_batch",
            parameters: params(&[
                ("jobs", json!(jobs)),
                ("batch", json!(BATCH_JOBS)),
                ("connections", json!(BATCH_CONNECTIONS)),
            ]),
            figures,
        })
    }
}
