//! `GET /metrics` (API.md "Metrics"): the Prometheus text format 0.0.4, with exactly the
//! names, types and labels of API.md.
//!
//! Counters and histograms are derived from the committed steps the daemon applies (each
//! written job and the state it had before the step) and from the RPC methods' answers,
//! recorded with atomics: no lock that the writer, the scheduler or an RPC call waits on
//! (a new queue or method swaps a copy of its map in, once). Gauges are read at scrape
//! time from what the store keeps per queue (`queue_stats`, the paused queues): a scrape
//! costs O(queues + metrics) and never scans the job table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use semantica_adapters::histogram::{AtomicHistogram, HistogramReading};
use semantica_core::{ErrorKind, JobState, QueueStats, Step};

use crate::service::Service;

/// Queues (and methods) that get metric cells at most: beyond, a new queue's counters
/// are not kept (a bound on the daemon's memory; queue names come from clients).
pub const LABELED_CELLS_MAX: usize = 10_000;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The terminal states, in the order of `semantica_jobs_finished_total`'s cells.
const TERMINAL_STATES: [JobState; 6] = [
    JobState::Done,
    JobState::Failed,
    JobState::Cancelled,
    JobState::Superseded,
    JobState::SkippedTtl,
    JobState::SkippedDeadline,
];

/// `semantica_job_attempts_total`'s `outcome` label values, in cell order.
const OUTCOMES: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// Every code API.md lets a method answer (0: success), in cell order.
const RPC_CODES: [i32; 14] =
    [0, -32700, -32600, -32601, -32602, -32603, 4000, 4001, 4002, 4003, 4010, 5000, 5001, 5002];

/// A map from label value to metric cells, read without a lock; adding a key copies the
/// map under a mutex that only adders take.
struct Cells<V> {
    map: ArcSwap<BTreeMap<String, Arc<V>>>,
    adding: Mutex<()>,
}

impl<V: Default> Cells<V> {
    fn new() -> Cells<V> {
        Cells { map: ArcSwap::from_pointee(BTreeMap::new()), adding: Mutex::new(()) }
    }

    fn get(&self, key: &str) -> Option<Arc<V>> {
        if let Some(cells) = self.map.load().get(key) {
            return Some(Arc::clone(cells));
        }
        let _adding = self.adding.lock().expect("metric cells lock");
        let current = self.map.load_full();
        if let Some(cells) = current.get(key) {
            return Some(Arc::clone(cells));
        }
        if current.len() >= LABELED_CELLS_MAX {
            return None;
        }
        let mut map = (*current).clone();
        let cells = Arc::new(V::default());
        map.insert(key.to_owned(), Arc::clone(&cells));
        self.map.store(Arc::new(map));
        Some(cells)
    }

    fn all(&self) -> Arc<BTreeMap<String, Arc<V>>> {
        self.map.load_full()
    }
}

#[derive(Default)]
struct QueueCells {
    enqueued: AtomicU64,
    finished: [AtomicU64; TERMINAL_STATES.len()],
    attempts: [AtomicU64; OUTCOMES.len()],
    wait: AtomicHistogram,
    run: AtomicHistogram,
}

#[derive(Default)]
struct MethodCells {
    codes: [AtomicU64; RPC_CODES.len()],
    /// Answers with a code outside API.md's table (a bug): shown as `code="other"`.
    other: AtomicU64,
    seconds: AtomicHistogram,
}

/// The daemon's counters and histograms, from its start.
pub struct Metrics {
    queues: Cells<QueueCells>,
    methods: Cells<MethodCells>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { queues: Cells::new(), methods: Cells::new() }
    }
}

impl Metrics {
    /// Counts what a committed step did: enqueues, ends, attempts and their durations.
    /// `now_ms` (engine time) is asked only when an attempt ended without a finish time
    /// (a retry).
    pub fn record_step(&self, step: &Step, now_ms: impl Fn() -> u64) {
        assert_eq!(step.written().count(), step.written_from.len(), "a step says where each written job came from");
        for (job, from) in step.written().zip(&step.written_from) {
            if *from == Some(job.state) {
                continue; // written without changing state (a pid, a reap)
            }
            let Some(cells) = self.queues.get(&job.queue) else { continue };
            if from.is_none() {
                cells.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(index) = TERMINAL_STATES.iter().position(|state| *state == job.state) {
                cells.finished[index].fetch_add(1, Ordering::Relaxed);
            }
            // An instant job (`noop`) starts and ends in its claim step.
            let ran_here = Step::ran_instantly(job, *from);
            if job.state == JobState::Running || ran_here {
                if let Some(started_ms) = job.started_at_ms {
                    cells.wait.record(Duration::from_millis(started_ms.saturating_sub(job.due_at_ms)));
                }
            }
            if *from == Some(JobState::Running) || ran_here {
                let outcome = match (job.state, job.error.as_ref().map(|error| error.kind)) {
                    (JobState::Done, _) => 0,
                    (JobState::Cancelled, _) => 3,
                    (_, Some(ErrorKind::Timeout)) => 2,
                    _ => 1,
                };
                cells.attempts[outcome].fetch_add(1, Ordering::Relaxed);
                if let Some(started_ms) = job.started_at_ms {
                    let ended_ms = job.finished_at_ms.unwrap_or_else(&now_ms);
                    cells.run.record(Duration::from_millis(ended_ms.saturating_sub(started_ms)));
                }
            }
        }
    }

    /// Counts one answer of a JSON-RPC method: its code (0: success) and how long it took.
    pub fn record_rpc(&self, method: &str, code: i32, elapsed: Duration) {
        let Some(cells) = self.methods.get(method) else { return };
        match RPC_CODES.iter().position(|known| *known == code) {
            Some(index) => cells.codes[index].fetch_add(1, Ordering::Relaxed),
            None => cells.other.fetch_add(1, Ordering::Relaxed),
        };
        cells.seconds.record(elapsed);
    }
}

/// What a scrape reads besides the counters: the gauges' sources.
pub struct Gauges {
    pub queues: Vec<QueueStats>,
    pub paused: BTreeSet<String>,
    pub now_ms: u64,
    pub workers: usize,
    pub db_size_bytes: u64,
    pub commit_seconds: HistogramReading,
}

/// The text of `GET /metrics`.
pub async fn scrape(service: &Arc<Service>) -> Result<String, String> {
    let (queues, paused) = service
        .read(|store| Ok((store.queue_stats()?, store.paused_queues()?)))
        .await
        .map_err(|error| error.to_string())?;
    let gauges = Gauges {
        queues,
        paused: paused.into_iter().collect(),
        now_ms: semantica_core::Clock::now_ms(service.clock.as_ref()),
        workers: service.config.workers,
        db_size_bytes: std::fs::metadata(&service.config.db_path).map(|m| m.len()).unwrap_or(0),
        commit_seconds: service.commit_seconds(),
    };
    encode(&service.metrics, &gauges)
}

/// The exposition of `metrics` and `gauges`.
pub fn encode(metrics: &Metrics, gauges: &Gauges) -> Result<String, String> {
    let families = families(metrics, gauges);
    let families: Vec<MetricFamily> = families.into_iter().filter(|family| !family.get_metric().is_empty()).collect();
    prometheus::TextEncoder::new().encode_to_string(&families).map_err(|error| error.to_string())
}

fn families(metrics: &Metrics, gauges: &Gauges) -> Vec<MetricFamily> {
    let queues = metrics.queues.all();
    let methods = metrics.methods.all();
    let mut enqueued = family("semantica_jobs_enqueued_total", "Jobs accepted by an enqueue.", MetricType::COUNTER);
    let mut finished =
        family("semantica_jobs_finished_total", "Jobs that reached a terminal state.", MetricType::COUNTER);
    let mut attempts = family("semantica_job_attempts_total", "Attempts that ended, by outcome.", MetricType::COUNTER);
    let mut wait = family("semantica_job_wait_seconds", "From due to start, per attempt.", MetricType::HISTOGRAM);
    let mut run = family("semantica_job_run_seconds", "How long one attempt ran.", MetricType::HISTOGRAM);
    for (queue, cells) in queues.iter() {
        let labels = [("queue", queue.as_str())];
        push(&mut enqueued, &labels, counter(cells.enqueued.load(Ordering::Relaxed)));
        for (state, count) in TERMINAL_STATES.iter().zip(&cells.finished) {
            push(&mut finished, &[("queue", queue), ("state", state.as_str())], counter(count.load(Ordering::Relaxed)));
        }
        for (outcome, count) in OUTCOMES.iter().zip(&cells.attempts) {
            push(&mut attempts, &[("queue", queue), ("outcome", outcome)], counter(count.load(Ordering::Relaxed)));
        }
        push(&mut wait, &labels, histogram(&cells.wait.read()));
        push(&mut run, &labels, histogram(&cells.run.read()));
    }

    let mut jobs = family("semantica_jobs", "Jobs waiting or running now.", MetricType::GAUGE);
    let mut paused = family("semantica_queue_paused", "1 while the queue is paused.", MetricType::GAUGE);
    let mut oldest = family(
        "semantica_queue_oldest_wait_seconds",
        "How long the oldest eligible QUEUED job has waited.",
        MetricType::GAUGE,
    );
    let mut stats: BTreeMap<&str, Option<&QueueStats>> =
        gauges.queues.iter().map(|q| (q.queue.as_str(), Some(q))).collect();
    for queue in &gauges.paused {
        stats.entry(queue.as_str()).or_insert(None);
    }
    let mut busy = 0;
    for (queue, stats) in &stats {
        let count = |state| stats.map_or(0, |stats| stats.count(state));
        for state in [JobState::Queued, JobState::Scheduled, JobState::Running] {
            push(&mut jobs, &[("queue", queue), ("state", state.as_str())], gauge(count(state) as f64));
        }
        busy += count(JobState::Running);
        push(&mut paused, &[("queue", queue)], gauge(if gauges.paused.contains(*queue) { 1.0 } else { 0.0 }));
        let oldest_ms =
            stats.and_then(|stats| stats.oldest_queued_due_ms).map_or(0, |due| gauges.now_ms.saturating_sub(due));
        push(&mut oldest, &[("queue", queue)], gauge(oldest_ms as f64 / 1000.0));
    }

    let mut workers = family("semantica_workers", "Jobs that may run at once, all queues.", MetricType::GAUGE);
    push(&mut workers, &[], gauge(gauges.workers as f64));
    let mut workers_busy = family("semantica_workers_busy", "Jobs running now.", MetricType::GAUGE);
    push(&mut workers_busy, &[], gauge(busy as f64));

    let mut requests = family("semantica_rpc_requests_total", "JSON-RPC calls answered, by code.", MetricType::COUNTER);
    let mut request_seconds =
        family("semantica_rpc_request_seconds", "How long a JSON-RPC call took.", MetricType::HISTOGRAM);
    for (method, cells) in methods.iter() {
        for (code, count) in RPC_CODES.iter().zip(&cells.codes) {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                push(&mut requests, &[("method", method), ("code", &code.to_string())], counter(count));
            }
        }
        let other = cells.other.load(Ordering::Relaxed);
        if other > 0 {
            push(&mut requests, &[("method", method), ("code", "other")], counter(other));
        }
        push(&mut request_seconds, &[("method", method)], histogram(&cells.seconds.read()));
    }

    let mut commit =
        family("semantica_store_commit_seconds", "How long a group commit's COMMIT took.", MetricType::HISTOGRAM);
    push(&mut commit, &[], histogram(&gauges.commit_seconds));
    let mut db_size = family("semantica_db_size_bytes", "Size of the database file.", MetricType::GAUGE);
    push(&mut db_size, &[], gauge(gauges.db_size_bytes as f64));
    let mut build = family("semantica_build_info", "Always 1; the daemon's version.", MetricType::GAUGE);
    push(&mut build, &[("version", env!("CARGO_PKG_VERSION"))], gauge(1.0));

    let mut families = vec![
        enqueued,
        finished,
        attempts,
        jobs,
        paused,
        oldest,
        wait,
        run,
        workers,
        workers_busy,
        requests,
        request_seconds,
        commit,
        db_size,
        build,
    ];
    // Not in API.md's table: only while spans are exported (`crate::otel`).
    if let Some(dropped) = crate::otel::dropped_spans() {
        let mut family = family(
            "semantica_trace_spans_dropped_total",
            "Trace spans dropped because the export queue was full.",
            MetricType::COUNTER,
        );
        push(&mut family, &[], counter(dropped));
        families.push(family);
    }
    families
}

fn family(name: &str, help: &str, kind: MetricType) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family
}

fn push(family: &mut MetricFamily, labels: &[(&str, &str)], mut metric: Metric) {
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect(),
    );
    family.mut_metric().push(metric);
}

fn counter(value: u64) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value as f64);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    metric
}

fn gauge(value: f64) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    metric
}

fn histogram(reading: &HistogramReading) -> Metric {
    let mut histogram = Histogram::default();
    histogram.set_sample_count(reading.count);
    histogram.set_sample_sum(reading.sum_seconds);
    histogram.set_bucket(
        reading
            .cumulative
            .iter()
            .map(|(bound, count)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(*bound);
                bucket.set_cumulative_count(*count);
                bucket
            })
            .collect(),
    );
    let mut metric = Metric::default();
    metric.set_histogram(histogram);
    metric
}

/// `GET /metrics` on a connection the gate let through (token, Unix socket, or later the
/// UI's cookie: the gate decides, this only answers).
pub async fn respond(service: &Arc<Service>) -> http::Response<jsonrpsee::server::HttpBody> {
    match scrape(service).await {
        Ok(text) => http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(jsonrpsee::server::HttpBody::from(text))
            .expect("a valid response"),
        Err(error) => http::Response::builder()
            .status(500)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(jsonrpsee::server::HttpBody::from(format!("metrics unavailable: {error}\n")))
            .expect("a valid response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_of_api_md_is_named_and_typed_as_it_says() {
        let metrics = Metrics::default();
        metrics.record_rpc("dev.get.v1", 4001, Duration::from_millis(1));
        metrics.queues.get("q");
        let gauges = Gauges {
            queues: Vec::new(),
            paused: BTreeSet::from(["q".to_owned()]),
            now_ms: 0,
            workers: 2,
            db_size_bytes: 4096,
            commit_seconds: AtomicHistogram::default().read(),
        };
        let text = encode(&metrics, &gauges).unwrap();
        for (name, kind) in [
            ("semantica_jobs_enqueued_total", "counter"),
            ("semantica_jobs_finished_total", "counter"),
            ("semantica_job_attempts_total", "counter"),
            ("semantica_jobs", "gauge"),
            ("semantica_queue_paused", "gauge"),
            ("semantica_queue_oldest_wait_seconds", "gauge"),
            ("semantica_job_wait_seconds", "histogram"),
            ("semantica_job_run_seconds", "histogram"),
            ("semantica_workers", "gauge"),
            ("semantica_workers_busy", "gauge"),
            ("semantica_rpc_requests_total", "counter"),
            ("semantica_rpc_request_seconds", "histogram"),
            ("semantica_store_commit_seconds", "histogram"),
            ("semantica_db_size_bytes", "gauge"),
            ("semantica_build_info", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} {kind} in\n{text}");
        }
        assert!(text.contains("semantica_rpc_requests_total{method=\"dev.get.v1\",code=\"4001\"} 1\n"), "{text}");
        assert!(text.contains("semantica_queue_paused{queue=\"q\"} 1\n"), "{text}");
    }
}
