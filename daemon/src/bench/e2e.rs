//! `e2e`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `e2e`: 16 connections enqueue `noop` jobs while the workers drain them; a few
    /// jobs per connection are read back for their enqueue-to-DONE latency.
    pub(crate) async fn e2e(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("e2e", run, "")?;
        let labels = self.labels("e2e", run, "");
        let window = Duration::from_secs_f64((E2E_SECONDS * self.scale).max(E2E_SECONDS_MIN));
        let progress = Progress::start("e2e enqueued".into(), 0);
        let cpu = daemon.cpu_meter();
        let commits = CommitMeter::start(&daemon).await;
        let stop_at = Instant::now() + window;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for connection in 0..E2E_CONNECTIONS {
            let client = daemon.client_at(connection)?;
            let labels = labels.clone();
            let done = Arc::clone(&progress.done);
            let sample_every = window / E2E_SAMPLES_PER_CONNECTION as u32;
            tasks.push(tokio::spawn(async move {
                let throttled = AtomicU64::new(0);
                let mut samples = Vec::new();
                let mut next_sample = Instant::now();
                let mut count = 0u64;
                let mut latencies_us = Vec::new();
                while Instant::now() < stop_at {
                    let index = count * E2E_CONNECTIONS as u64 + connection as u64;
                    let job = noop_job(&labels, index);
                    let sent = Instant::now();
                    let answer = call(&client, "dev.enqueue.v1", &job, &throttled).await?;
                    latencies_us.push(sent.elapsed().as_micros() as u64);
                    count += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    if sent >= next_sample {
                        samples.push(answer["job_id"].clone());
                        next_sample = sent + sample_every;
                    }
                }
                Ok::<_, String>((count, samples, latencies_us, throttled.into_inner()))
            }));
        }
        let (mut enqueued, mut samples, mut enqueue_latencies_us, mut throttled) = (0u64, Vec::new(), Vec::new(), 0);
        for task in tasks {
            let (count, mut some, mut latencies, throttles) = task.await.map_err(|e| e.to_string())??;
            enqueued += count;
            samples.append(&mut some);
            enqueue_latencies_us.append(&mut latencies);
            throttled += throttles;
        }
        let enqueue_elapsed = started.elapsed();
        drop(progress);
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        // A job is committed more than once here (enqueued, started, ended): no jobs per commit.
        commits.figures(&daemon, None, &mut figures).await;
        let client = daemon.client()?;
        let at_end = counts(&client, &labels.queue).await?;
        let timeout = Duration::from_secs(120 + enqueued / 100);
        let end = wait_counts(&client, &labels.queue, timeout, "e2e drain", |c| c.open() == 0).await?;
        let all_ended = started.elapsed();
        let mut latencies_us = Vec::new();
        for id in &samples {
            let job = call(&client, "dev.get.v1", &json!({"job_id": id}), &AtomicU64::new(0)).await?;
            if let (Some(created), Some(finished)) = (job["created_at"].as_u64(), job["finished_at"].as_u64()) {
                if job["state"] == "DONE" {
                    latencies_us.push(finished.saturating_sub(created) * 1000);
                }
            }
        }
        figures.insert("jobs_per_s".into(), json!(rate(at_end.done, enqueue_elapsed)));
        latency_figures(&mut figures, latencies_us, "");
        figures.insert("enqueued_per_s".into(), json!(rate(enqueued, enqueue_elapsed)));
        figures.insert("backlog_at_end".into(), json!(at_end.open()));
        figures.insert("all_done_per_s".into(), json!(rate(end.done, all_ended)));
        latency_figures(&mut figures, enqueue_latencies_us, "enqueue_");
        figures.insert("samples".into(), json!(samples.len()));
        figures.insert("throttled".into(), json!(throttled));
        figures.insert("not_done".into(), json!(end.total() - end.done));
        self.finish(&daemon, &labels, &mut figures).await?;
        Ok(Row {
            scenario: "e2e",
            parameters: params(&[
                ("seconds", json!(round3(window.as_secs_f64()))),
                ("connections", json!(E2E_CONNECTIONS)),
                ("workers", self.target.workers()),
            ]),
            figures,
        })
    }
}
