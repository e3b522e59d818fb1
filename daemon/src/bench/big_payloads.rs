//! `big_payloads`.

#[allow(unused_imports)]
use super::*;

impl Bench {
    /// `big_payloads`: N `echo` jobs of 1 MiB each, enqueued one by one, paged through
    /// with `dev.query_jobs.v1` at its largest limit while they run, then waited for: the
    /// peak RSS must follow the 8 MiB page bound, not the jobs' total size.
    pub(crate) async fn big_payloads(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("big_payloads", run, "")?;
        let labels = self.labels("big_payloads", run, "");
        let jobs = self.size(BIG_JOBS);
        let text = Arc::new("x".repeat(BIG_PAYLOAD_BYTES));
        let template = move |labels: &Labels, index: u64| {
            json!({
                "job_type": "echo",
                "queue": labels.queue,
                "subject_key": format!("{}-{index}", labels.subject_prefix),
                "payload": {"text": text.as_str()},
                "tag": labels.tag,
            })
        };
        let outcome = enqueue_singly(&daemon, &labels, jobs, 1, template, "big_payloads").await?;
        let client = daemon.client()?;
        let started = Instant::now();
        let (mut pages, mut items, mut page_bytes_max, mut cursor) = (0u64, 0u64, 0usize, Value::Null);
        loop {
            let mut query = json!({"filter": {"queue": [labels.queue]}, "limit": 200});
            if !cursor.is_null() {
                query["cursor"] = cursor.clone();
            }
            let page = call(&client, "dev.query_jobs.v1", &query, &AtomicU64::new(0)).await?;
            let page_items = page["items"].as_array().map_or(0, Vec::len);
            if page_items == 0 {
                return Err("big_payloads: a page came back empty".into());
            }
            pages += 1;
            items += page_items as u64;
            page_bytes_max = page_bytes_max.max(serde_json::to_vec(&page["items"]).map_or(0, |json| json.len()));
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        let paging = started.elapsed();
        let end =
            wait_counts(&client, &labels.queue, Duration::from_secs(600), "big_payloads", |c| c.open() == 0).await?;
        let mut figures = Map::new();
        figures.insert("jobs_per_s".into(), json!(rate(jobs, outcome.elapsed)));
        latency_figures(&mut figures, outcome.latencies_us, "");
        figures.insert("pages".into(), json!(pages));
        figures.insert("items_paged".into(), json!(items));
        figures.insert("page_mib_max".into(), json!(round3(page_bytes_max as f64 / (1024.0 * 1024.0))));
        figures.insert("paging_ms".into(), json!(round3(paging.as_secs_f64() * 1000.0)));
        figures.insert("done".into(), json!(end.done));
        self.finish(&daemon, &labels, &mut figures).await?;
        Ok(Row {
            scenario: "big_payloads",
            parameters: params(&[
                ("jobs", json!(jobs)),
                ("payload_bytes", json!(BIG_PAYLOAD_BYTES)),
                ("job", json!("echo")),
            ]),
            figures,
        })
    }
}
