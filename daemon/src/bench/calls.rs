//! Calls over the wire, counts polled from `admin.stats.v1`, progress lines, and the
//! enqueue loops that every scenario shares.

#[allow(unused_imports)]
use super::*;

// ---- calls -------------------------------------------------------------------------

/// One call; THROTTLED answers wait `retry_after_ms` and try again (counted).
pub(crate) async fn call(client: &Client, method: &str, params: &Value, throttled: &AtomicU64) -> BenchResult<Value> {
    for _ in 0..THROTTLED_RETRIES_MAX {
        match client.call(method, params).await {
            Ok(value) => return Ok(value),
            Err(error) if error.kind() == ErrorKind::Throttled => {
                throttled.fetch_add(1, Ordering::Relaxed);
                let wait_ms = error.retry_after_ms().unwrap_or(10).clamp(1, 1000);
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(error) => return Err(format!("{method}: {error}")),
        }
    }
    Err(format!("{method}: still THROTTLED after {THROTTLED_RETRIES_MAX} tries"))
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) queued: u64,
    pub(crate) scheduled: u64,
    pub(crate) running: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) cancelled: u64,
    pub(crate) superseded: u64,
    pub(crate) skipped: u64,
}

impl Counts {
    pub(crate) fn open(&self) -> u64 {
        self.queued + self.scheduled + self.running
    }

    pub(crate) fn total(&self) -> u64 {
        self.open() + self.done + self.failed + self.cancelled + self.superseded + self.skipped
    }
}

pub(crate) async fn counts(client: &Client, queue: &str) -> BenchResult<Counts> {
    let stats = call(client, "admin.stats.v1", &json!({}), &AtomicU64::new(0)).await?;
    let Some(entry) = stats["queues"].as_array().into_iter().flatten().find(|q| q["name"] == queue) else {
        return Ok(Counts::default());
    };
    let n = |key: &str| entry[key].as_u64().unwrap_or(0);
    Ok(Counts {
        queued: n("queued"),
        scheduled: n("scheduled"),
        running: n("running"),
        done: n("done"),
        failed: n("failed"),
        cancelled: n("cancelled"),
        superseded: n("superseded"),
        skipped: n("skipped"),
    })
}

/// Polls the queue's counts until `done` says so, or fails after `timeout`.
pub(crate) async fn wait_counts(
    client: &Client,
    queue: &str,
    timeout: Duration,
    label: &str,
    done: impl Fn(&Counts) -> bool,
) -> BenchResult<Counts> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let now = counts(client, queue).await?;
        if done(&now) {
            return Ok(now);
        }
        if started.elapsed() > timeout {
            return Err(format!("{label}: gave up after {} s: {now:?}", timeout.as_secs()));
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("    {label}: {} open, {} done", now.open(), now.done);
            last_report = Instant::now();
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Prints `done/total` every two seconds until dropped.
pub(crate) struct Progress {
    pub(crate) done: Arc<AtomicU64>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl Progress {
    pub(crate) fn start(label: String, total: u64) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&done), Arc::clone(&stop));
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let n = count.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                eprintln!("    {label}: {n}/{total} ({rate:.0}/s)");
            }
        });
        Progress { done, stop }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
pub(crate) fn enqueue_parameters(jobs: u64, connections: usize) -> Map<String, Value> {
    params(&[("jobs", json!(jobs)), ("connections", json!(connections)), ("jobs_due", json!("in 24 h"))])
}

/// Cancels every live job of `tag`, in as many calls as the daemon's fan-out limit needs.
pub(crate) async fn cancel_tag(client: &Client, tag: &str) -> BenchResult<()> {
    for _ in 0..EVENT_CALLS_MAX {
        let cancelled = call(client, "dev.cancel.v1", &json!({"tag": tag}), &AtomicU64::new(0)).await?;
        if cancelled["cancelled_count"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
    }
    Err(format!("jobs of tag {tag} were still live after {EVENT_CALLS_MAX} cancels"))
}
pub(crate) fn noop_job(labels: &Labels, index: u64) -> Value {
    json!({
        "job_type": "noop",
        "queue": labels.queue,
        "subject_key": format!("{}-{index}", labels.subject_prefix),
        "tag": labels.tag,
    })
}

pub(crate) fn true_job(labels: &Labels, index: u64) -> Value {
    json!({
        "job_type": "bench.true",
        "queue": labels.queue,
        "subject_key": format!("{}-{index}", labels.subject_prefix),
        "exec": {"command": "true"},
        "tag": labels.tag,
    })
}

/// The first `started_at` and the last `finished_at` of a drained queue. Jobs start in
/// enqueue order, so the first and last pages by sequence hold them.
pub(crate) async fn span_ms(client: &Client, queue: &str) -> BenchResult<(u64, u64)> {
    let page = |sort: &str| json!({"filter": {"queue": [queue]}, "sort": sort, "limit": 200});
    let first = call(client, "dev.query_jobs.v1", &page("ASC"), &AtomicU64::new(0)).await?;
    let last = call(client, "dev.query_jobs.v1", &page("DESC"), &AtomicU64::new(0)).await?;
    let times = |page: &Value, key: &str| -> Vec<u64> {
        page["items"].as_array().into_iter().flatten().filter_map(|job| job[key].as_u64()).collect()
    };
    let first_start = times(&first, "started_at").into_iter().min().ok_or("no job of the queue started")?;
    let last_end = times(&last, "finished_at").into_iter().max().ok_or("no job of the queue finished")?;
    Ok((first_start, last_end))
}

pub(crate) struct Outcome {
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) throttled: u64,
}

/// `jobs` single `dev.enqueue.v1` calls over `connections` keep-alive connections; job
/// `i` goes to connection `i % connections`.
pub(crate) async fn enqueue_singly(
    daemon: &Daemon,
    labels: &Labels,
    jobs: u64,
    connections: usize,
    template: impl Fn(&Labels, u64) -> Value + Clone + Send + 'static,
    label: &str,
) -> BenchResult<Outcome> {
    let progress = Progress::start(format!("{label} c={connections}"), jobs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..connections as u64 {
        let client = daemon.client_at(connection as usize)?;
        let (labels, template, done) = (labels.clone(), template.clone(), Arc::clone(&progress.done));
        tasks.push(tokio::spawn(async move {
            let throttled = AtomicU64::new(0);
            let mut latencies_us = Vec::with_capacity((jobs / connections as u64) as usize + 1);
            let mut index = connection;
            while index < jobs {
                let job = template(&labels, index);
                let sent = Instant::now();
                call(&client, "dev.enqueue.v1", &job, &throttled).await?;
                latencies_us.push(sent.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
                index += connections as u64;
            }
            Ok::<_, String>((latencies_us, throttled.into_inner()))
        }));
    }
    let (mut latencies_us, mut throttled) = (Vec::with_capacity(jobs as usize), 0);
    for task in tasks {
        let (mut some, throttles) = task.await.map_err(|e| e.to_string())??;
        latencies_us.append(&mut some);
        throttled += throttles;
    }
    Ok(Outcome { elapsed: started.elapsed(), latencies_us, throttled })
}

/// `jobs` in `dev.enqueue_batch.v1` calls of `BATCH_JOBS` over `connections` connections.
pub(crate) async fn enqueue_batches(
    daemon: &Daemon,
    labels: &Labels,
    jobs: u64,
    connections: usize,
    template: impl Fn(&Labels, u64) -> Value + Clone + Send + 'static,
    label: &str,
) -> BenchResult<Outcome> {
    let progress = Progress::start(format!("{label} batches"), jobs);
    let batches = jobs.div_ceil(BATCH_JOBS as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..connections as u64 {
        let client = daemon.client_at(connection as usize)?;
        let (labels, template, done) = (labels.clone(), template.clone(), Arc::clone(&progress.done));
        tasks.push(tokio::spawn(async move {
            let throttled = AtomicU64::new(0);
            let mut latencies_us = Vec::new();
            let mut batch = connection;
            while batch < batches {
                let first = batch * BATCH_JOBS as u64;
                let last = (first + BATCH_JOBS as u64).min(jobs);
                let list: Vec<Value> = (first..last).map(|index| template(&labels, index)).collect();
                let sent = Instant::now();
                let answer = call(&client, "dev.enqueue_batch.v1", &json!({"jobs": list}), &throttled).await?;
                latencies_us.push(sent.elapsed().as_micros() as u64);
                let results = answer["results"].as_array().map(Vec::len).unwrap_or(0) as u64;
                if results != last - first {
                    return Err(format!("a batch of {} answered {results} results", last - first));
                }
                done.fetch_add(results, Ordering::Relaxed);
                batch += connections as u64;
            }
            Ok::<_, String>((latencies_us, throttled.into_inner()))
        }));
    }
    let (mut latencies_us, mut throttled) = (Vec::new(), 0);
    for task in tasks {
        let (mut some, throttles) = task.await.map_err(|e| e.to_string())??;
        latencies_us.append(&mut some);
        throttled += throttles;
    }
    Ok(Outcome { elapsed: started.elapsed(), latencies_us, throttled })
}
