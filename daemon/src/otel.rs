//! OTLP/HTTP span export (API.md "Trace context"): `enqueue <queue>` (PRODUCER) for each
//! accepted enqueue and `run <job_type>` (CONSUMER) for each attempt, in the job's trace.
//!
//! The spans are `tracing` spans (target [`TARGET`]) that `tracing-opentelemetry` turns
//! into OpenTelemetry spans; the SDK's batch span processor hands them to the OTLP
//! exporter on a thread of its own. Their ids are not drawn at random: they are the ones
//! `semantica_adapters::trace` derives from the job (the subprocess's `TRACEPARENT` names
//! the run span), handed to the SDK through `JobIds` on the thread that closes the span.
//! Parents: `enqueue`'s is the span of the enqueue's `traceparent` when one was given
//! (else it is a root); `run`'s is the job's `enqueue` span. Only `dev.enqueue.v1` and
//! `dev.enqueue_batch.v1` open `enqueue` spans: a job made otherwise (a recurring slot,
//! `dev.retry.v1`) has `run` spans whose parent was never exported. The flags of a
//! caller's `traceparent` are not read: every accepted job is sampled (its `TRACEPARENT`
//! says so too), unless `OTEL_TRACES_SAMPLER` decides otherwise.
//!
//! Promises: with neither `OTEL_EXPORTER_OTLP_ENDPOINT` nor
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, nothing here runs (no exporter, no thread, no
//! per-job work: one atomic load per step). Export never blocks or slows the hot path:
//! ending a span is a bounded `try_send`; at most [`SPAN_QUEUE_MAX`] spans (or
//! `OTEL_BSP_MAX_QUEUE_SIZE`) wait for export, and beyond that spans are dropped and counted
//! (`semantica_trace_spans_dropped_total`, and a log line). The HTTP requests run on the
//! daemon's runtime (hyper, non-blocking); an unreachable collector costs only the
//! export thread's time. Shutdown waits at most [`SHUTDOWN_MAX`] for the last export.
//!
//! Never: a deduplicated or refused enqueue exported (no job was accepted), or a span
//! whose ids are random exported in place of a job's.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use semantica_adapters::trace;
use semantica_core::{Action, Job, JobId, JobState, Reply, Step};
use tracing::field::Empty;
use tracing::{info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `tracing` target of the exported spans; the export layer sees nothing else.
pub const TARGET: &str = "semantica::otel";
/// Spans ended but not yet exported, at most, unless `OTEL_BSP_MAX_QUEUE_SIZE` says
/// otherwise; more are dropped and counted.
pub const SPAN_QUEUE_MAX: usize = 4096;
/// The most `OTEL_BSP_MAX_QUEUE_SIZE` may ask for (a bound on the daemon's memory).
const SPAN_QUEUE_LIMIT: usize = 1 << 20;
/// Attempts whose `run` span is open at once, at most (far above any worker count).
pub const RUN_SPANS_MAX: usize = 65_536;
/// How long shutdown waits for the last export.
pub const SHUTDOWN_MAX: Duration = Duration::from_secs(3);
/// One export request's time limit (the OTLP exporter's own default is the same).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SERVICE_NAME: &str = "semantica";

static EXPORT: OnceLock<Export> = OnceLock::new();
/// What `layer` found, logged by `log_status` once logging is up.
static STATUS: OnceLock<Result<String, String>> = OnceLock::new();

struct Export {
    provider: SdkTracerProvider,
    dropped: Arc<AtomicU64>,
    /// Open `run` spans by job and attempt, from spawn to the end of the attempt.
    runs: Mutex<HashMap<(JobId, u32), tracing::Span>>,
}

/// Whether spans are exported (the OTLP variables were set and the exporter was built).
pub fn enabled() -> bool {
    EXPORT.get().is_some()
}

/// Spans dropped because the export queue was full, since start; `None` when not exporting.
pub fn dropped_spans() -> Option<u64> {
    EXPORT.get().map(|export| export.dropped.load(Ordering::Relaxed))
}

/// The layer that exports spans, when the OTLP endpoint variables ask for it; `None`
/// otherwise (and then nothing of this module ever runs). Call once, inside the daemon's
/// tokio runtime, before the subscriber is installed.
pub fn layer<S>() -> Option<impl Layer<S>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    if !export_configured(|name| std::env::var(name).ok()) {
        return None;
    }
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let dropped = Arc::new(AtomicU64::new(0));
    let provider = match provider(runtime, Arc::clone(&dropped)) {
        Ok(provider) => provider,
        Err(error) => {
            let _ = STATUS.set(Err(error));
            return None;
        }
    };
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "semantica");
    let export = Export { provider, dropped, runs: Mutex::new(HashMap::new()) };
    if EXPORT.set(export).is_err() {
        return None; // a second call: the first layer exports
    }
    let _ = STATUS.set(Ok(endpoint_description()));
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO));
    Some(layer)
}

/// Logs whether spans are exported, and where to (once logging is up).
pub fn log_status() {
    match STATUS.get() {
        Some(Ok(endpoint)) => info!(endpoint = %endpoint, "exporting trace spans over OTLP/HTTP"),
        Some(Err(error)) => {
            warn!(%error, "OTLP trace export is configured but could not start; spans are not exported")
        }
        None => {}
    }
}

/// Exports what is still queued, waiting at most [`SHUTDOWN_MAX`]; attempts still open
/// are not exported (they did not end).
pub async fn shutdown() {
    let Some(export) = EXPORT.get() else { return };
    let open: Vec<tracing::Span> = export.runs.lock().expect("run spans lock").drain().map(|(_, span)| span).collect();
    open.into_iter().for_each(discard);
    let provider = export.provider.clone();
    let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_MAX));
    if tokio::time::timeout(SHUTDOWN_MAX + Duration::from_secs(1), flushed).await.is_err() {
        warn!("trace export did not finish in time; the last spans are lost");
    }
    let dropped = export.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        warn!(dropped, "trace spans dropped since start because the export queue was full");
    }
}

/// Whether the environment asks for span export: an OTLP traces endpoint is set, and
/// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`.
fn export_configured(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|value| !value.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    let no_exporter = var("OTEL_TRACES_EXPORTER").is_some_and(|value| value.trim().eq_ignore_ascii_case("none"));
    endpoint && !disabled && !no_exporter
}

fn endpoint_description() -> String {
    match std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok().filter(|v| !v.trim().is_empty()) {
        Some(endpoint) => endpoint,
        None => format!("{}/v1/traces", std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default()),
    }
}

fn provider(runtime: tokio::runtime::Handle, dropped: Arc<AtomicU64>) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    let client = OnRuntime {
        client: opentelemetry_http::hyper::HyperClient::with_default_connector(REQUEST_TIMEOUT, None),
        runtime,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map_err(|error| error.to_string())?;
    let pending = Arc::new(AtomicUsize::new(0));
    let exporter = Counted { inner: exporter, pending: Arc::clone(&pending) };
    let queue_max = queue_max(|name| std::env::var(name).ok());
    // The processor's own queue is as long as the admission bound, so it never drops.
    let config = BatchConfigBuilder::default().with_max_queue_size(queue_max).build();
    let batch = BatchSpanProcessor::builder(exporter).with_batch_config(config).build();
    let processor = Bounded { inner: batch, pending, dropped, queue_max };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_id_generator(JobIds::default())
        .with_resource(resource(|name| std::env::var(name).ok()))
        .build())
}

/// `OTEL_BSP_MAX_QUEUE_SIZE` when it is a number from 1 to `SPAN_QUEUE_LIMIT`, else
/// [`SPAN_QUEUE_MAX`].
fn queue_max(var: impl Fn(&str) -> Option<String>) -> usize {
    var("OTEL_BSP_MAX_QUEUE_SIZE")
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|max| (1..=SPAN_QUEUE_LIMIT).contains(max))
        .unwrap_or(SPAN_QUEUE_MAX)
}

/// `service.name` is `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`),
/// else `semantica`.
fn resource(var: impl Fn(&str) -> Option<String>) -> Resource {
    let named = var("OTEL_SERVICE_NAME").is_some_and(|name| !name.trim().is_empty())
        || var("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|attributes| attributes.split(',').any(|pair| pair.trim().starts_with("service.name=")));
    let builder = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        builder.build()
    } else {
        builder.with_service_name(DEFAULT_SERVICE_NAME).build()
    }
}

// ---- the spans -----------------------------------------------------------------------

/// The `enqueue` spans of one enqueue call, one per job asked for, from the call's start.
/// Dropped without [`EnqueueSpans::finish`] (a refusal, an error): none is exported.
pub struct EnqueueSpans {
    spans: Vec<tracing::Span>,
}

impl EnqueueSpans {
    /// Opens a span per job of the call, with the call's `traceparent` of each (already
    /// validated); `None` when not exporting.
    pub fn start<'a>(traceparents: impl ExactSizeIterator<Item = Option<&'a str>>) -> Option<EnqueueSpans> {
        if !enabled() {
            return None;
        }
        let spans = traceparents
            .map(|traceparent| {
                let span = tracing::info_span!(
                    target: TARGET,
                    parent: None,
                    "enqueue",
                    otel.name = Empty,
                    otel.kind = "producer",
                    messaging.system = "semantica",
                    messaging.destination.name = Empty,
                    messaging.message.id = Empty,
                    semantica.job.attempt = Empty,
                    semantica.job.subject_key = Empty,
                );
                let parent = traceparent.and_then(trace::parse_traceparent).and_then(|(trace_id, span_id)| {
                    Some(remote_parent(TraceId::from_hex(trace_id).ok()?, SpanId::from_hex(span_id).ok()?))
                });
                let _ = span.set_parent(parent.unwrap_or_default());
                span
            })
            .collect();
        Some(EnqueueSpans { spans })
    }

    /// Ends the spans of the jobs the committed `step` accepted, with the ids of the jobs
    /// it wrote; a deduplicated enqueue is not exported (its job's span already was).
    pub fn finish(mut self, step: &Step) {
        let results = match &step.reply {
            Reply::Enqueued(result) => std::slice::from_ref(result),
            Reply::EnqueuedBatch(results) => results.as_slice(),
            _ => return,
        };
        if results.len() != self.spans.len() {
            return; // not this call's answer: export nothing rather than the wrong ids
        }
        let inserted: HashMap<JobId, &Job> = step
            .written()
            .zip(&step.written_from)
            .filter(|(_, from)| from.is_none())
            .map(|(job, _)| (job.id, job))
            .collect();
        for (span, result) in self.spans.drain(..).zip(results) {
            match inserted.get(&result.job_id).filter(|_| !result.deduplicated) {
                Some(job) => {
                    span.record("otel.name", format!("enqueue {}", job.queue).as_str());
                    span.record("messaging.destination.name", job.queue.as_str());
                    span.record("messaging.message.id", job.id.to_string().as_str());
                    span.record("semantica.job.attempt", i64::from(job.attempts));
                    span.record("semantica.job.subject_key", job.subject_key.as_str());
                    close_as(span, &trace::trace_id(job), &trace::enqueue_span_id(job.id));
                }
                None => discard(span),
            }
        }
    }
}

impl Drop for EnqueueSpans {
    fn drop(&mut self) {
        self.spans.drain(..).for_each(discard);
    }
}

/// Opens a `run` span for each attempt `step` started and ends the ones whose attempt
/// ended (the attempt's state after it is `semantica.job.state`). Does nothing when not
/// exporting.
pub fn record_step(step: &Step) {
    let Some(export) = EXPORT.get() else { return };
    assert_eq!(step.written().count(), step.written_from.len(), "a step says where each written job came from");
    // Ends first: a step that ended one attempt of a job and started the next holds both.
    for (job, from) in step.written().zip(&step.written_from) {
        if *from == Some(JobState::Running) && job.state != JobState::Running {
            export.run_ended(job);
        }
        // An instant job (`noop`): started and ended in this step, spawned never.
        if Step::ran_instantly(job, *from) {
            export.run_started(job);
            export.run_ended(job);
        }
    }
    for action in &step.actions {
        if let Action::Spawn(job) = action {
            export.run_started(job);
        }
    }
}

impl Export {
    fn run_started(&self, job: &Job) {
        let span = tracing::info_span!(
            target: TARGET,
            parent: None,
            "run",
            otel.name = %format_args!("run {}", job.job_type),
            otel.kind = "consumer",
            otel.status_code = Empty,
            messaging.system = "semantica",
            messaging.destination.name = job.queue.as_str(),
            messaging.message.id = %job.id,
            // i64: tracing-opentelemetry keeps only signed integers as integers.
            semantica.job.attempt = i64::from(job.attempts),
            semantica.job.subject_key = job.subject_key.as_str(),
            semantica.job.state = Empty,
        );
        let trace_id = TraceId::from_hex(&trace::trace_id(job)).expect("trace ids are hex");
        let enqueue_span_id = SpanId::from_hex(&trace::enqueue_span_id(job.id)).expect("span ids are hex");
        let _ = span.set_parent(remote_parent(trace_id, enqueue_span_id));
        let mut runs = self.runs.lock().expect("run spans lock");
        if runs.len() >= RUN_SPANS_MAX {
            drop(runs);
            discard(span);
            return;
        }
        if let Some(stale) = runs.insert((job.id, job.attempts), span) {
            drop(runs);
            discard(stale);
        }
    }

    fn run_ended(&self, job: &Job) {
        let Some(span) = self.runs.lock().expect("run spans lock").remove(&(job.id, job.attempts)) else {
            return; // started before this daemon did (restart recovery), or not kept
        };
        span.record("semantica.job.state", job.state.as_str());
        if job.state != JobState::Done && job.error.is_some() {
            span.record("otel.status_code", "ERROR");
        }
        close_as(span, &trace::trace_id(job), &trace::run_span_id(job.id, job.attempts));
    }
}

/// A parent from elsewhere (a client's `traceparent`, or the job's `enqueue` span).
fn remote_parent(trace_id: TraceId, span_id: SpanId) -> Context {
    let parent = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, TraceState::default());
    Context::new().with_remote_span_context(parent)
}

/// Ends `span` as the span `span_id` (in trace `trace_id` unless its parent names one).
fn close_as(span: tracing::Span, trace_id: &str, span_id: &str) {
    let ids = (TraceId::from_hex(trace_id).ok(), SpanId::from_hex(span_id).ok());
    if ids.0.is_none() || ids.1.is_none() {
        discard(span);
        return;
    }
    NEXT_IDS.with(|next| next.set(ids));
    // The SDK builds the span, and draws its ids, when its tracing span closes: here.
    drop(span);
    NEXT_IDS.with(|next| next.set((None, None)));
}

/// Closes `span` without exporting it.
fn discard(span: tracing::Span) {
    let _ = span.set_parent(Context::new().with_telemetry_suppressed());
    drop(span);
}

thread_local! {
    /// The ids of the span being closed on this thread (see `close_as`).
    static NEXT_IDS: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// The SDK's id source: the ids `close_as` set for the span it closes on this thread,
/// else random ones (the SDK's default).
#[derive(Debug, Default)]
struct JobIds {
    random: RandomIdGenerator,
}

impl IdGenerator for JobIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(|next| {
                let (trace_id, span_id) = next.get();
                next.set((None, span_id));
                trace_id
            })
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(|next| {
                let (trace_id, span_id) = next.get();
                next.set((trace_id, None));
                span_id
            })
            .unwrap_or_else(|| self.random.new_span_id())
    }
}

// ---- export plumbing -------------------------------------------------------------------

/// The batch span processor behind an admission count: a span is taken only while fewer
/// than `queue_max` wait for export (queued or in the batch being sent), so the
/// processor's own queue (as long) never fills and every drop is counted here.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    pending: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    queue_max: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.queue_max {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!(
                    queue_max = self.queue_max,
                    "trace export queue full (collector slow or unreachable): dropping spans; \
                     semantica_trace_spans_dropped_total counts them"
                );
            }
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting spans out of `Bounded`'s admission once their export is
/// over (sent or failed).
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    pending: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.pending.fetch_sub(spans, Ordering::AcqRel);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// hyper's client, run on the daemon's runtime: the batch processor's thread drives the
/// export future with a plain executor, which cannot run hyper's I/O itself.
#[derive(Debug)]
struct OnRuntime {
    client: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|error| Box::new(error) as HttpError)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn export_is_on_only_with_an_endpoint_and_not_disabled() {
        assert!(!export_configured(env(&[])));
        assert!(!export_configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(export_configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(export_configured(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")])));
        assert!(!export_configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_SDK_DISABLED", "true")])));
        assert!(!export_configured(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }

    #[test]
    fn the_queue_bound_follows_otel_bsp_max_queue_size_within_limits() {
        assert_eq!(queue_max(env(&[])), SPAN_QUEUE_MAX);
        assert_eq!(queue_max(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "16")])), 16);
        assert_eq!(queue_max(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")])), SPAN_QUEUE_MAX);
        assert_eq!(queue_max(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "many")])), SPAN_QUEUE_MAX);
        assert_eq!(queue_max(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999")])), SPAN_QUEUE_MAX);
    }

    #[test]
    fn service_name_defaults_to_semantica_unless_the_environment_names_one() {
        let name =
            |resource: Resource| resource.get(&opentelemetry::Key::new("service.name")).map(|value| value.to_string());
        assert_eq!(name(resource(env(&[]))).as_deref(), Some("semantica"));
    }

    #[test]
    fn close_as_hands_its_ids_to_the_next_span_built_on_this_thread_only() {
        let ids = JobIds::default();
        NEXT_IDS.with(|next| {
            next.set((
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").ok(),
                SpanId::from_hex("00f067aa0ba902b7").ok(),
            ))
        });
        assert_eq!(ids.new_span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert_eq!(ids.new_trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        // Used once: the next ids are random again.
        assert_ne!(ids.new_span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert_ne!(ids.new_trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
    }
}
