//! `supersede_storm`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `supersede_storm`: many enqueues over few subjects of a 10 ms job: how many ran.
    pub(crate) async fn supersede_storm(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("supersede_storm", run, "")?;
        let labels = self.labels("supersede_storm", run, "");
        let enqueues = self.size(STORM_ENQUEUES);
        let subjects = self.size(STORM_SUBJECTS);
        let template = move |labels: &Labels, index: u64| {
            json!({
                "job_type": "sleep",
                "queue": labels.queue,
                "subject_key": format!("{}-{}", labels.subject_prefix, index % subjects),
                "payload": {"ms": STORM_SLEEP_MS},
                "tag": labels.tag,
            })
        };
        let cpu = daemon.cpu_meter();
        let outcome =
            enqueue_singly(&daemon, &labels, enqueues, STORM_CONNECTIONS, template, "supersede_storm").await?;
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        let client = daemon.client()?;
        let timeout = Duration::from_secs(120 + subjects / 10);
        let end = wait_counts(&client, &labels.queue, timeout, "storm drain", |c| c.open() == 0).await?;
        figures.insert("jobs_per_s".into(), json!(rate(enqueues, outcome.elapsed)));
        latency_figures(&mut figures, outcome.latencies_us, "");
        figures.insert("ran".into(), json!(end.done + end.failed));
        figures.insert("superseded".into(), json!(end.superseded));
        figures.insert("ran_target_max".into(), json!(subjects + 2 * self.target.workers_count() as u64));
        figures.insert("throttled".into(), json!(outcome.throttled));
        self.finish(&daemon, &labels, &mut figures).await?;
        Ok(Row {
            scenario: "supersede_storm",
            parameters: params(&[
                ("enqueues", json!(enqueues)),
                ("subjects", json!(subjects)),
                ("job", json!(format!("sleep {STORM_SLEEP_MS} ms"))),
                ("connections", json!(STORM_CONNECTIONS)),
            ]),
            figures,
        })
    }
}
