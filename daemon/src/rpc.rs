//! The JSON-RPC methods of API.md and the listeners that serve them: HTTP and WebSocket
//! on TCP (bearer token) and on the Unix socket (file mode), plus `GET /health`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceBuilder, RpcServiceT};
use jsonrpsee::core::server::{BatchResponseBuilder, MethodResponse};
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, HttpBody, HttpRequest, HttpResponse, Methods, RpcModule, Server,
    ServerConfig, ServerHandle, StopHandle,
};
use jsonrpsee::types::{ErrorObjectOwned, Id, Params, Response, ResponsePayload};
use semantica_adapters::logs::{CHUNK_BYTES_DEFAULT, CHUNK_BYTES_MAX};
use semantica_core::{
    limits, CancelRequest, Clock, Enqueued, Input, JobId, JobQuery, JobState, RecurringRequest, Reply, RetryRequest,
    ValidationError, ValidationKind,
};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, UnixListener};
use tracing::{info, warn};

use semantica_adapters::{engine_to_wall_ms, wall_to_engine_ms};

use crate::config::ConfigChanges;
use crate::service::{ReloadError, Service, ServiceError};
use crate::wire::{self, to_json, WireError};
use semantica_client::types;

/// A request body larger than this is refused (413).
pub const REQUEST_BYTES_MAX: u32 = 2 * 1024 * 1024;
/// jsonrpsee's bound on one answer (a batch's answers together).
const RESPONSE_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// What a throttled client is told to wait before trying again.
const RETRY_AFTER_MS: u64 = 100;
/// `dev.wait.v1`'s longest wait.
const WAIT_MS_MAX: u64 = 300_000;
/// On a store shared with other daemons, `dev.wait.v1` also reads the job again this
/// often: a daemon hears only of the ends of the jobs it runs.
const WAIT_READ_SHARED: Duration = Duration::from_millis(250);

type RpcResult = Result<Value, ErrorObjectOwned>;

fn to_rpc(error: WireError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(error.code, error.message, Some(error.data))
}

fn invalid(error: ValidationError) -> ErrorObjectOwned {
    to_rpc(WireError::validation(&error))
}

fn service_error(error: ServiceError) -> ErrorObjectOwned {
    match error {
        ServiceError::Store(error) => to_rpc(WireError::new(wire::DB_ERROR, "db_error", error.to_string())),
        ServiceError::EngineGone => to_rpc(WireError::new(wire::INTERNAL_ERROR, "internal", error.to_string())),
        ServiceError::Busy => to_rpc(
            WireError::new(wire::THROTTLED, "throttled", error.to_string()).with("retry_after_ms", RETRY_AFTER_MS),
        ),
    }
}

/// The params as an object (absent params read as `{}`).
fn params_object(params: &Params) -> Result<Map<String, Value>, ErrorObjectOwned> {
    if params.as_str().is_none() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(params.as_str().unwrap_or("{}")) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(ValidationError::new("params", ValidationKind::InvalidFormat, "must be an object"))),
        // Valid JSON to the envelope's reader, not to ours (a number beyond f64).
        Err(error) => Err(to_rpc(WireError::new(-32700, "parse_error", format!("params: {error}")))),
    }
}

fn only_fields(map: &Map<String, Value>, known: &[&str]) -> Result<(), ErrorObjectOwned> {
    match map.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => {
            Err(invalid(ValidationError::new(unknown.clone(), ValidationKind::InvalidFormat, "is not a known field")))
        }
        None => Ok(()),
    }
}

fn required_job_id(map: &Map<String, Value>) -> Result<JobId, ErrorObjectOwned> {
    wire::job_id(map, "job_id")
        .map_err(invalid)?
        .ok_or_else(|| invalid(ValidationError::new("job_id", ValidationKind::Missing, "is required")))
}

fn uint(map: &Map<String, Value>, key: &str) -> Result<Option<u64>, ErrorObjectOwned> {
    match map.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            invalid(ValidationError::new(key, ValidationKind::InvalidFormat, "must be a non-negative integer"))
        }),
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ErrorObjectOwned> {
    match map.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(ValidationError::new(key, ValidationKind::InvalidFormat, "must be a string"))),
    }
}

fn enqueued(result: &Enqueued) -> types::EnqueueResult {
    types::EnqueueResult {
        job_id: result.job_id.to_string(),
        queue: result.queue.clone(),
        state: wire::job_state(result.state),
        generation: result.generation,
        deduplicated: result.deduplicated,
    }
}

fn enqueued_all(results: &[Enqueued]) -> types::EnqueueResults {
    types::EnqueueResults { results: results.iter().map(enqueued).collect() }
}

fn unexpected(reply: Reply) -> ErrorObjectOwned {
    to_rpc(WireError::new(wire::INTERNAL_ERROR, "internal", format!("unexpected engine reply {reply:?}")))
}

async fn enqueue(service: Arc<Service>, params: Params<'static>) -> Result<types::EnqueueResult, ErrorObjectOwned> {
    let request = Value::Object(params_object(&params)?);
    let spans = crate::otel::EnqueueSpans::start(std::iter::once(request.get("traceparent").and_then(Value::as_str)));
    let request = wire::enqueue_request(&request).map_err(invalid)?;
    let step = service.run_request(Input::Enqueue(Box::new(request))).await.map_err(service_error)?;
    if let Some(spans) = spans {
        spans.finish(&step);
    }
    match step.reply {
        Reply::Enqueued(result) => Ok(enqueued(&result)),
        Reply::Rejected(rejection) => Err(to_rpc(WireError::rejection(&rejection))),
        other => Err(unexpected(other)),
    }
}

async fn enqueue_batch(
    service: Arc<Service>,
    params: Params<'static>,
) -> Result<types::EnqueueResults, ErrorObjectOwned> {
    let map = params_object(&params)?;
    only_fields(&map, &["jobs"])?;
    let jobs = match map.get("jobs") {
        Some(Value::Array(jobs)) => jobs,
        Some(_) => {
            return Err(invalid(ValidationError::new("jobs", ValidationKind::InvalidFormat, "must be an array")))
        }
        None => return Err(invalid(ValidationError::new("jobs", ValidationKind::Missing, "is required"))),
    };
    if jobs.is_empty() || jobs.len() > limits::BATCH_JOBS_MAX {
        let message = format!("a batch holds 1 to {} jobs", limits::BATCH_JOBS_MAX);
        return Err(invalid(ValidationError::new("jobs", ValidationKind::OutOfRange, message)));
    }
    let requests = jobs
        .iter()
        .enumerate()
        .map(|(index, job)| wire::enqueue_request(job).map_err(|error| invalid(error.at_index(index))))
        .collect::<Result<Vec<_>, _>>()?;
    let spans = crate::otel::EnqueueSpans::start(jobs.iter().map(|job| job.get("traceparent").and_then(Value::as_str)));
    let step = service.run_request(Input::EnqueueBatch(requests)).await.map_err(service_error)?;
    if let Some(spans) = spans {
        spans.finish(&step);
    }
    match step.reply {
        Reply::EnqueuedBatch(results) => Ok(enqueued_all(&results)),
        Reply::Rejected(rejection) => Err(to_rpc(WireError::rejection(&rejection))),
        other => Err(unexpected(other)),
    }
}

async fn cancel(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["job_id", "tag", "chain_group_id"])?;
    let request = CancelRequest {
        job_id: wire::job_id(&map, "job_id").map_err(invalid)?,
        tag: text(&map, "tag")?,
        chain_group_id: text(&map, "chain_group_id")?,
    };
    // A cancel by tag or group ends its matches in rounds of at most
    // `CANCEL_ROUND_JOBS_MAX` jobs, each its own step (and commit), up to
    // `FAN_OUT_JOBS_MAX` jobs in one call. Should the daemon stop between rounds, the call
    // was not answered and what was cancelled so far stays cancelled.
    let mut cancelled = 0;
    for _ in 0..limits::FAN_OUT_JOBS_MAX.div_ceil(limits::CANCEL_ROUND_JOBS_MAX) {
        match service.run_request(Input::Cancel(request.clone())).await.map_err(service_error)?.reply {
            Reply::Cancelled { count, more } => {
                cancelled += count;
                if !more {
                    break;
                }
            }
            Reply::Rejected(rejection) => return Err(to_rpc(WireError::rejection(&rejection))),
            other => return Err(unexpected(other)),
        }
    }
    Ok(to_json(&types::CancelResult { cancelled_count: cancelled as u64 }))
}

async fn get(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["job_id"])?;
    let id = required_job_id(&map)?;
    match service.get(id).await.map_err(service_error)? {
        Some(job) => Ok(to_json(&wire::job_view(&job, service.clock.offset_ms()))),
        None => Err(to_rpc(WireError::rejection(&semantica_core::Rejection::NotFound(id)))),
    }
}

async fn wait(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["job_id", "timeout_ms"])?;
    let id = required_job_id(&map)?;
    let timeout_ms = uint(&map, "timeout_ms")?
        .ok_or_else(|| invalid(ValidationError::new("timeout_ms", ValidationKind::Missing, "is required")))?;
    if timeout_ms > WAIT_MS_MAX {
        return Err(invalid(ValidationError::new(
            "timeout_ms",
            ValidationKind::OutOfRange,
            format!("at most {WAIT_MS_MAX}"),
        )));
    }
    // Listen before reading, so that an end between the read and the wait is not missed.
    let mut finished = service.subscribe_finished();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let shared = service.config.store_url.is_some();
    loop {
        let job = service.get(id).await.map_err(service_error)?;
        let Some(job) = job else { return Err(to_rpc(WireError::rejection(&semantica_core::Rejection::NotFound(id)))) };
        if job.state.is_terminal() {
            return Ok(to_json(&wire::job_view(&job, service.clock.offset_ms())));
        }
        loop {
            let until = if shared { deadline.min(tokio::time::Instant::now() + WAIT_READ_SHARED) } else { deadline };
            match tokio::time::timeout_at(until, finished.recv()).await {
                // Another daemon may have ended it: read again.
                Err(_) if until < deadline => break,
                Err(_) => {
                    // Ended and already purged (retention 0) since the last read: gone.
                    let Some(job) = service.get(id).await.map_err(service_error)? else {
                        return Err(to_rpc(WireError::rejection(&semantica_core::Rejection::NotFound(id))));
                    };
                    if job.state.is_terminal() {
                        return Ok(to_json(&wire::job_view(&job, service.clock.offset_ms())));
                    }
                    let job = wire::job_view(&job, service.clock.offset_ms());
                    return Ok(to_json(&types::WaitTimedOut { timed_out: true, job }));
                }
                Ok(Ok(ended)) if ended != id => continue,
                // Ours, or notices were dropped (lagged): read again.
                Ok(_) => break,
            }
        }
    }
}

const QUERY_FILTER_FIELDS: [&str; 7] =
    ["state", "queue", "job_type", "tag", "chain_group_id", "subject_key_prefix", "created_after"];

fn string_list(map: &Map<String, Value>, key: &str) -> Result<Vec<String>, ErrorObjectOwned> {
    let field = format!("filter.{key}");
    match map.get(key).filter(|v| !v.is_null()) {
        None => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|item| item.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                invalid(ValidationError::new(field, ValidationKind::InvalidFormat, "must be an array of strings"))
            })
        }
        Some(_) => {
            Err(invalid(ValidationError::new(field, ValidationKind::InvalidFormat, "must be an array of strings")))
        }
    }
}

/// The cursor is opaque to clients: `c` and the last seq in hex.
fn encode_cursor(seq: u64) -> String {
    format!("c{seq:x}")
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    u64::from_str_radix(cursor.strip_prefix('c')?, 16).ok()
}

/// The `filter` of `dev.query_jobs.v1` (and of `dev.retry.v1`): the query's filter part,
/// its wall-clock `created_after` on the engine's timeline (`offset_ms` behind the wall).
fn job_filter(map: &Map<String, Value>, offset_ms: i64) -> Result<JobQuery, ErrorObjectOwned> {
    let filter = match map.get("filter").filter(|v| !v.is_null()) {
        None => Map::new(),
        Some(Value::Object(filter)) => filter.clone(),
        Some(_) => {
            return Err(invalid(ValidationError::new("filter", ValidationKind::InvalidFormat, "must be an object")))
        }
    };
    if let Some(unknown) = filter.keys().find(|key| !QUERY_FILTER_FIELDS.contains(&key.as_str())) {
        return Err(invalid(ValidationError::new(
            format!("filter.{unknown}"),
            ValidationKind::InvalidFormat,
            "is not a known field",
        )));
    }
    let states = string_list(&filter, "state")?
        .iter()
        .map(|state| {
            state.parse::<JobState>().map_err(|_| {
                invalid(ValidationError::new(
                    "filter.state",
                    ValidationKind::InvalidFormat,
                    format!("unknown state {state:?}"),
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JobQuery {
        states,
        queues: string_list(&filter, "queue")?,
        job_type: text(&filter, "job_type")?,
        tag: text(&filter, "tag")?,
        chain_group_id: text(&filter, "chain_group_id")?,
        subject_key_prefix: text(&filter, "subject_key_prefix")?,
        created_after_ms: uint(&filter, "created_after")
            .map_err(|_| {
                invalid(ValidationError::new(
                    "filter.created_after",
                    ValidationKind::InvalidFormat,
                    "must be a non-negative integer",
                ))
            })?
            .map(|wall_ms| wall_to_engine_ms(wall_ms, offset_ms)),
        ..JobQuery::default()
    })
}

async fn query_jobs(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["filter", "sort", "limit", "cursor"])?;
    let filter = job_filter(&map, service.clock.offset_ms())?;
    let descending = match text(&map, "sort")?.as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => {
            return Err(invalid(ValidationError::new(
                "sort",
                ValidationKind::InvalidFormat,
                format!("{other:?}: use ASC or DESC"),
            )))
        }
    };
    let limit = uint(&map, "limit")?.unwrap_or(50);
    if !(1..=JobQuery::LIMIT_MAX as u64).contains(&limit) {
        return Err(invalid(ValidationError::new(
            "limit",
            ValidationKind::OutOfRange,
            format!("must be 1 to {}", JobQuery::LIMIT_MAX),
        )));
    }
    let after_seq = match text(&map, "cursor")? {
        None => None,
        Some(cursor) => Some(decode_cursor(&cursor).ok_or_else(|| {
            invalid(ValidationError::new("cursor", ValidationKind::InvalidFormat, "not a cursor this daemon gave"))
        })?),
    };
    let query = JobQuery {
        descending,
        limit: limit as usize,
        after_seq,
        // The store stops reading at the bound; the views are then measured exactly.
        bytes_max: Some(PAGE_BYTES_MAX),
        ..filter
    };
    let page = service.read(move |store| store.query(&query)).await.map_err(service_error)?;
    Ok(bounded_page(page, service.clock.offset_ms()))
}

/// A page of `dev.query_jobs.v1` holds at most this much JSON (API.md "Bounded answers").
const PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The page's views, stopping before the one that would take the answer past
/// `PAGE_BYTES_MAX` (at least one, whatever its size); the cursor then continues after
/// the last view given.
fn bounded_page(page: semantica_core::JobPage, offset_ms: i64) -> Value {
    let mut items = Vec::with_capacity(page.items.len());
    let mut bytes = 0;
    let mut next_after_seq = page.next_after_seq;
    for (index, job) in page.items.iter().enumerate() {
        let view = wire::job_view(job, offset_ms);
        let view_bytes = serde_json::to_vec(&view).map_or(0, |json| json.len()) + 1;
        if !items.is_empty() && bytes + view_bytes > PAGE_BYTES_MAX {
            next_after_seq = Some(page.items[index - 1].seq);
            break;
        }
        bytes += view_bytes;
        items.push(view);
    }
    to_json(&types::JobPage { items, next_cursor: next_after_seq.map(encode_cursor) })
}

async fn event(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["name"])?;
    let name = text(&map, "name")?
        .ok_or_else(|| invalid(ValidationError::new("name", ValidationKind::Missing, "is required")))?;
    if name.is_empty() || name.chars().count() > limits::EVENT_NAME_CHARS_MAX {
        return Err(invalid(ValidationError::new(
            "name",
            ValidationKind::OutOfRange,
            format!("1 to {} characters", limits::EVENT_NAME_CHARS_MAX),
        )));
    }
    // Released in rounds of at most `EVENT_ROUND_JOBS_MAX` jobs, each its own step, so
    // that a million waiters do not make one step (and its memory) a million jobs big.
    // Should the daemon stop between rounds, the call was not answered and the jobs
    // released so far stay released; the rest still wait for the event.
    let mut released = 0;
    loop {
        match service.run_request(Input::Event { name: name.clone() }).await.map_err(service_error)?.reply {
            Reply::Released { count } => {
                released += count;
                if count < limits::EVENT_ROUND_JOBS_MAX {
                    return Ok(to_json(&types::EventResult { released_count: released as u64 }));
                }
            }
            other => return Err(unexpected(other)),
        }
    }
}

async fn logs_tail(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["job_id", "offset", "limit"])?;
    let id = required_job_id(&map)?;
    let offset = uint(&map, "offset")?.unwrap_or(0);
    let limit = uint(&map, "limit")?.unwrap_or(CHUNK_BYTES_DEFAULT);
    if limit == 0 || limit > CHUNK_BYTES_MAX {
        return Err(invalid(ValidationError::new(
            "limit",
            ValidationKind::OutOfRange,
            format!("1 to {CHUNK_BYTES_MAX} bytes"),
        )));
    }
    let Some(job) = service.get(id).await.map_err(service_error)? else {
        return Err(to_rpc(WireError::rejection(&semantica_core::Rejection::NotFound(id))));
    };
    let (chunk, whole) = service
        .read_log(&job, offset, limit)
        .await
        .map_err(|error| to_rpc(WireError::new(wire::SYSTEM_ERROR, "log_unreadable", error)))?;
    let eof = chunk.at_end && job.state.is_terminal() && whole;
    Ok(to_json(&types::LogChunk { chunk: chunk.text, next_offset: chunk.next_offset, eof }))
}

async fn stats(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    only_fields(&params_object(&params)?, &[])?;
    let (mut queues, paused) =
        service.read(|store| Ok((store.queue_stats()?, store.paused_queues()?))).await.map_err(service_error)?;
    // A paused queue shows even before it holds a job.
    for queue in &paused {
        if !queues.iter().any(|q| &q.queue == queue) {
            queues.push(semantica_core::QueueStats { queue: queue.clone(), ..Default::default() });
        }
    }
    queues.sort_by(|a, b| a.queue.cmp(&b.queue));
    let now_ms = service.clock.now_ms();
    let (system, memory_percent) = service.system();
    let file_size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let db = service.config.db_path.clone();
    let wal = db.with_extension(format!("{}-wal", db.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let nodes = match service.nodes().await {
        Some(nodes) => nodes
            .map_err(|e| service_error(ServiceError::Store(semantica_core::StoreError::Unavailable(e))))?
            .into_iter()
            .map(|node| types::NodeStats {
                id: node.id,
                lease_expires_at: Some(node.lease_expires_at_ms),
                running: node.running,
            })
            .collect(),
        None => {
            let running = service.read(|store| store.process_count(None)).await.map_err(service_error)?;
            vec![types::NodeStats {
                id: service.config.node_id.clone(),
                lease_expires_at: None,
                running: running as u64,
            }]
        }
    };
    Ok(to_json(&types::Stats {
        nodes,
        queues: queues
            .iter()
            .map(|q| types::QueueStats {
                name: q.queue.clone(),
                queued: q.count(JobState::Queued),
                scheduled: q.count(JobState::Scheduled),
                running: q.count(JobState::Running),
                done: q.count(JobState::Done),
                failed: q.count(JobState::Failed),
                cancelled: q.count(JobState::Cancelled),
                superseded: q.count(JobState::Superseded),
                skipped: q.count(JobState::SkippedTtl) + q.count(JobState::SkippedDeadline),
                avg_wait_ms: q.avg_wait_ms,
                paused: paused.contains(&q.queue),
                oldest_wait_ms: q.oldest_queued_due_ms.map_or(0, |due| now_ms.saturating_sub(due)),
            })
            .collect(),
        system: types::SystemStats {
            cpu_usage: system.cpu_load_percent,
            memory_usage: memory_percent,
            is_idle: system.is_idle,
            on_battery: !system.is_charging,
            db_size: file_size(&db),
            db_wal_size: file_size(&wal),
            uptime_ms: service.uptime().as_millis() as u64,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    }))
}

async fn pause(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    set_paused(service, params, true).await
}

async fn resume(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    set_paused(service, params, false).await
}

async fn set_paused(service: Arc<Service>, params: Params<'static>, paused: bool) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["queue"])?;
    let queue = text(&map, "queue")?
        .ok_or_else(|| invalid(ValidationError::new("queue", ValidationKind::Missing, "is required")))?;
    match service.run_request(Input::PauseQueue { queue, paused }).await.map_err(service_error)?.reply {
        Reply::QueuePaused { queue, paused } => Ok(to_json(&types::QueuePaused { queue, paused })),
        Reply::Rejected(rejection) => Err(to_rpc(WireError::rejection(&rejection))),
        other => Err(unexpected(other)),
    }
}

async fn retry(service: Arc<Service>, params: Params<'static>) -> Result<types::EnqueueResults, ErrorObjectOwned> {
    let map = params_object(&params)?;
    only_fields(&map, &["job_id", "filter", "limit"])?;
    let filter =
        map.get("filter").filter(|v| !v.is_null()).map(|_| job_filter(&map, service.clock.offset_ms())).transpose()?;
    let limit = match map.get("limit").filter(|v| !v.is_null()) {
        None => None,
        Some(value) => Some(value.as_i64().ok_or_else(|| {
            invalid(ValidationError::new("limit", ValidationKind::InvalidFormat, "must be an integer"))
        })?),
    };
    let request = RetryRequest { job_id: wire::job_id(&map, "job_id").map_err(invalid)?, filter, limit };
    match service.run_request(Input::Retry(Box::new(request))).await.map_err(service_error)?.reply {
        Reply::Retried(results) => Ok(enqueued_all(&results)),
        Reply::Rejected(rejection) => Err(to_rpc(WireError::rejection(&rejection))),
        other => Err(unexpected(other)),
    }
}

async fn recurring_set(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["name", "cron", "timezone", "job"])?;
    let required = |key: &str| -> Result<String, ErrorObjectOwned> {
        text(&map, key)?.ok_or_else(|| invalid(ValidationError::new(key, ValidationKind::Missing, "is required")))
    };
    let (name, cron) = (required("name")?, required("cron")?);
    let job = map
        .get("job")
        .filter(|v| !v.is_null())
        .ok_or_else(|| invalid(ValidationError::new("job", ValidationKind::Missing, "is required")))?;
    let offset_ms = service.clock.offset_ms();
    let job = wire::enqueue_request(job).map_err(|error| invalid(error.within("job")))?;
    let request = RecurringRequest { name, cron, timezone: text(&map, "timezone")?, job };
    match service.run_request(Input::SetRecurring(Box::new(request))).await.map_err(service_error)?.reply {
        Reply::RecurringSet { name, next_at_ms } => {
            let next_at = next_at_ms.map(|at| engine_to_wall_ms(at, offset_ms));
            Ok(to_json(&types::RecurringSetResult { name, next_at }))
        }
        Reply::Rejected(rejection) => Err(to_rpc(WireError::rejection(&rejection))),
        other => Err(unexpected(other)),
    }
}

async fn recurring_delete(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["name"])?;
    let name = text(&map, "name")?
        .ok_or_else(|| invalid(ValidationError::new("name", ValidationKind::Missing, "is required")))?;
    match service.run_request(Input::DeleteRecurring { name }).await.map_err(service_error)?.reply {
        Reply::RecurringDeleted { deleted } => Ok(to_json(&types::RecurringDeleteResult { deleted })),
        other => Err(unexpected(other)),
    }
}

async fn recurring_list(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &[])?;
    let items = service.read(|store| store.recurring_list()).await.map_err(service_error)?;
    let offset_ms = service.clock.offset_ms();
    let items = items
        .iter()
        .map(|r| types::RecurringJob {
            name: r.name.clone(),
            cron: r.cron.clone(),
            timezone: r.timezone.clone(),
            job: wire::enqueue_params(&r.job),
            next_at: r.next_at_ms.map(|at| engine_to_wall_ms(at, offset_ms)),
            last_enqueued_job_id: r.last_enqueued_job_id.map(|id| id.to_string()),
        })
        .collect();
    Ok(to_json(&types::RecurringList { items }))
}

/// The database is vacuumed when it grows past this.
const DB_BYTES_VACUUM: u64 = 1024 * 1024 * 1024;

async fn maintenance(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &["force_vacuum"])?;
    let force_vacuum = match map.get("force_vacuum").filter(|v| !v.is_null()) {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(invalid(ValidationError::new(
                "force_vacuum",
                ValidationKind::InvalidFormat,
                "must be true or false",
            )))
        }
    };
    let db = service.config.db_path.clone();
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let db_size_before = size(&db);
    // The same purge the daemon runs by itself every `maintenance_interval_seconds`.
    let purged = service.purge_expired().await.map_err(service_error)?;
    // VACUUM is SQLite's: a Postgres store is vacuumed by its server (autovacuum).
    let vacuum = service.config.store_url.is_none() && (force_vacuum || db_size_before > DB_BYTES_VACUUM);
    if vacuum {
        let path = db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let store = semantica_adapters::SqliteStore::open(&path, &Default::default()).map_err(|e| e.to_string())?;
            store.connection().execute_batch("VACUUM").map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| service_error(ServiceError::EngineGone))?
        .map_err(|error| to_rpc(WireError::new(wire::DB_ERROR, "db_error", error)))?;
    }
    Ok(to_json(&types::MaintenanceResult {
        deleted_jobs: purged.jobs,
        deleted_logs: purged.logs,
        vacuumed: vacuum,
        db_size_before,
        db_size_after: size(&db),
    }))
}

/// `admin.reload.v1` (an addition to the v1 calls): reads `config.toml` again, as SIGHUP
/// does. `{}` → `{"reloaded": true, "changed": [keys], "restart_required": [keys]}`; a
/// file that does not parse is 4000 `invalid_config`, and the running config stays.
async fn reload(service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &[])?;
    match service.reload().await {
        Ok(changes) => {
            log_reloaded(&changes);
            let names = |keys: &[&str]| keys.iter().map(|key| key.to_string()).collect();
            Ok(to_json(&types::ReloadResult {
                reloaded: true,
                changed: names(&changes.changed),
                restart_required: names(&changes.restart_required),
            }))
        }
        Err(ReloadError::Invalid(error)) => {
            log_not_reloaded(&error);
            Err(to_rpc(WireError::new(wire::VALIDATION_ERROR, "invalid_config", error)))
        }
        Err(ReloadError::EngineGone) => Err(service_error(ServiceError::EngineGone)),
    }
}

/// `rpc.discover` (API.md v1.1): `{}` → the OpenRPC document of this daemon, generated
/// from the wire types its answers are built from (`docs/openrpc.json` holds the same).
async fn discover(_service: Arc<Service>, params: Params<'static>) -> RpcResult {
    let map = params_object(&params)?;
    only_fields(&map, &[])?;
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Ok(DOCUMENT.get_or_init(|| semantica_client::openrpc::document(env!("CARGO_PKG_VERSION"))).clone())
}

/// `admin.ui_login.v1` (API.md "Web dashboard"): `{}` → a one-time sign-in link. Over the
/// Unix socket or with the bearer token only: a dashboard session cannot make more.
fn ui_login(service: &Service, params: &Params, by_cookie: bool) -> RpcResult {
    if by_cookie {
        return Err(to_rpc(WireError::new(
            wire::UNAUTHORIZED,
            "unauthorized",
            "sign-in links are given over the Unix socket or with the bearer token",
        )));
    }
    only_fields(&params_object(params)?, &[])?;
    let (url, expires_at) = service.ui.issue_code().ok_or_else(|| {
        to_rpc(WireError::new(wire::INTERNAL_ERROR, "internal", "the dashboard is not served (no TCP listener yet)"))
    })?;
    Ok(to_json(&types::UiLogin { url, expires_at }))
}

/// The log line of a reload that took effect (SIGHUP or `admin.reload.v1`).
pub fn log_reloaded(changes: &ConfigChanges) {
    info!(changed = ?changes.changed, restart_required = ?changes.restart_required, "config reloaded");
    if !changes.restart_required.is_empty() {
        warn!(keys = ?changes.restart_required, "these config.toml keys take effect only at the next start");
    }
}

/// The one log line of a reload refused: the file, the place and the error.
pub fn log_not_reloaded(error: &str) {
    warn!("config not reloaded, the running config stays: {error}");
}

/// A method answered straight from a single HTTP call's body ([`Api::direct_answer`]): the
/// body of its answer to the call's id.
type Direct = Arc<dyn Fn(Arc<Service>, Params<'static>, Id<'static>) -> DirectAnswer + Send + Sync>;
type DirectAnswer = Pin<Box<dyn Future<Output = String> + Send>>;

/// The methods, twice: jsonrpsee's table (WebSocket, batches, notifications, and the
/// HTTP calls [`Api::direct_answer`] leaves to it) and the same methods for single HTTP
/// calls.
#[derive(Clone)]
pub struct Api {
    methods: Methods,
    direct: Arc<HashMap<&'static str, Direct>>,
    service: Arc<Service>,
}

impl Api {
    /// The answer to a single call of a method of the direct table: one parse of the body
    /// (as jsonrpsee parses it), the method, and its answer written from the typed value.
    /// `None` for anything else (a batch, a notification, another method, a body that is
    /// no call), which jsonrpsee answers.
    fn direct_answer(&self, body: &[u8]) -> Option<DirectAnswer> {
        let call: Call = serde_json::from_slice(body).ok()?;
        let method = self.direct.get(call.method.as_ref())?;
        let id = call_id(call.id)?;
        let params = Params::new(call.params.map(RawValue::get)).into_owned();
        Some(method(Arc::clone(&self.service), params, id))
    }

    /// One call's answer as a single HTTP call gets it (the direct table, else jsonrpsee),
    /// without the transport: for the fuzz targets. `None` when jsonrpsee refuses the body
    /// as a whole.
    pub async fn answer(&self, body: &str) -> Option<String> {
        match self.direct_answer(body.as_bytes()) {
            Some(answer) => Some(answer.await),
            None => {
                let (answer, _notifications) = self.methods.raw_json_request(body, 16).await.ok()?;
                Some(String::from(Box::<str>::from(answer)))
            }
        }
    }
}

/// Registers `method` in both tables, with its metrics; its answer is any serializable
/// value (a typed answer is written straight to the response, without a `Value` tree in
/// between).
fn register<F, Fut, T>(
    module: &mut RpcModule<Service>,
    direct: &mut HashMap<&'static str, Direct>,
    name: &'static str,
    method: F,
) where
    F: Fn(Arc<Service>, Params<'static>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T, ErrorObjectOwned>> + Send + 'static,
    T: serde::Serialize + Clone + Send + 'static,
{
    let timed = move |service: Arc<Service>, params: Params<'static>| {
        let method = method.clone();
        async move {
            let started = std::time::Instant::now();
            let metrics_service = Arc::clone(&service);
            let result = method(service, params).await;
            let code = result.as_ref().err().map_or(0, ErrorObjectOwned::code);
            metrics_service.metrics.record_rpc(name, code, started.elapsed());
            result
        }
    };
    let for_module = timed.clone();
    module
        .register_async_method(name, move |params, service, _| for_module(service, params))
        .expect("method names are unique");
    let answer: Direct = Arc::new(move |service, params, id| {
        let result = timed(service, params);
        Box::pin(async move { answer_body(id, result.await) })
    });
    assert!(direct.insert(name, answer).is_none(), "method names are unique");
}

/// The body jsonrpsee would answer a single call with: the typed answer written once, and
/// an error, or an answer over [`RESPONSE_BYTES_MAX`], as [`ContractErrors`] shapes it.
fn answer_body<T: serde::Serialize + Clone>(id: Id<'static>, result: Result<T, ErrorObjectOwned>) -> String {
    let response = match result {
        Ok(answer) => {
            let body = serde_json::to_string(&Response::new(ResponsePayload::success_borrowed(&answer), id.clone()))
                .expect("an answer serializes");
            if body.len() <= RESPONSE_BYTES_MAX as usize {
                return body;
            }
            let payload = jsonrpsee::core::server::ResponsePayload::success(answer);
            MethodResponse::response(id.clone(), payload, RESPONSE_BYTES_MAX as usize)
        }
        Err(error) => MethodResponse::error(id.clone(), error),
    };
    String::from(Box::<str>::from(with_error_kind(response, id).into_parts().0))
}

/// Every method of API.md (v1 and v1.1) and `admin.reload.v1`.
pub fn methods(service: Arc<Service>) -> Api {
    let mut module = RpcModule::from_arc(Arc::clone(&service));
    let mut direct = HashMap::new();
    let table = &mut direct;
    register(&mut module, table, "dev.enqueue.v1", enqueue);
    register(&mut module, table, "dev.enqueue_batch.v1", enqueue_batch);
    register(&mut module, table, "dev.cancel.v1", cancel);
    register(&mut module, table, "dev.get.v1", get);
    register(&mut module, table, "dev.wait.v1", wait);
    register(&mut module, table, "dev.query_jobs.v1", query_jobs);
    register(&mut module, table, "dev.event.v1", event);
    register(&mut module, table, "logs.tail.v1", logs_tail);
    register(&mut module, table, "admin.stats.v1", stats);
    register(&mut module, table, "admin.maintenance.v1", maintenance);
    register(&mut module, table, "admin.queue.pause.v1", pause);
    register(&mut module, table, "admin.queue.resume.v1", resume);
    register(&mut module, table, "dev.retry.v1", retry);
    register(&mut module, table, "dev.recurring.set.v1", recurring_set);
    register(&mut module, table, "dev.recurring.delete.v1", recurring_delete);
    register(&mut module, table, "dev.recurring.list.v1", recurring_list);
    register(&mut module, table, "admin.reload.v1", reload);
    register(&mut module, table, "rpc.discover", discover);
    // Only in jsonrpsee's table: the sign-in reads the request's extensions (a cookie),
    // and a subscription needs a WebSocket.
    module
        .register_async_method("admin.ui_login.v1", |params, service, extensions| async move {
            ui_login(&service, &params, extensions.get::<crate::ui::CookieSession>().is_some())
        })
        .expect("method names are unique");
    module
        .register_subscription(
            "logs.follow.v1",
            "logs.chunk",
            "logs.unfollow.v1",
            |params, pending, service, _| async move { follow(service, params, pending).await },
        )
        .expect("subscription names are unique");
    Api { methods: module.into(), direct: Arc::new(direct), service }
}

/// `logs.follow.v1`: chunks as the log grows, ending once the job is terminal and its log
/// is drained, with a last notification `{"chunk": "", "next_offset", "eof": true}`.
async fn follow(
    service: Arc<Service>,
    params: Params<'static>,
    pending: jsonrpsee::PendingSubscriptionSink,
) -> Result<(), jsonrpsee::core::SubscriptionError> {
    let parsed = params_object(&params).and_then(|map| {
        only_fields(&map, &["job_id", "offset"])?;
        Ok((required_job_id(&map)?, uint(&map, "offset")?.unwrap_or(0)))
    });
    let (id, mut offset) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            pending.reject(error).await;
            return Ok(());
        }
    };
    let Ok(Some(mut job)) = service.get(id).await else {
        pending.reject(to_rpc(WireError::rejection(&semantica_core::Rejection::NotFound(id)))).await;
        return Ok(());
    };
    let sink = pending.accept().await?;
    loop {
        let now = service.get(id).await;
        let terminal = matches!(&now, Ok(Some(job)) if job.state.is_terminal());
        if let Ok(Some(now)) = now {
            job = now;
        }
        let (chunk, whole) = service.read_log(&job, offset, CHUNK_BYTES_DEFAULT).await?;
        if !chunk.text.is_empty() {
            let item = types::FollowChunk { chunk: chunk.text, next_offset: chunk.next_offset, eof: None };
            let message = serde_json::value::to_raw_value(&to_json(&item)).map_err(|e| e.to_string())?;
            sink.send(message).await.map_err(|e| e.to_string())?;
            offset = chunk.next_offset;
            continue;
        }
        if chunk.at_end && terminal && whole {
            // JSON-RPC has no "end of subscription": a last notification with `eof` says so.
            let last = types::FollowChunk { chunk: String::new(), next_offset: offset, eof: Some(true) };
            let message = serde_json::value::to_raw_value(&to_json(&last)).map_err(|e| e.to_string())?;
            sink.send(message).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = sink.closed() => return Ok(()),
        }
    }
}

/// Compares in time independent of where the first difference is.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    difference == 0
}

fn json_response(status: u16, body: Value) -> HttpResponse {
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(HttpBody::from(body.to_string()))
        .expect("a valid response")
}

fn error_body(code: i32, kind: &str, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message, "data": {"kind": kind, "details": message}}})
}

/// What runs before the body is read: health, the dashboard's pages, the token or the
/// dashboard's session cookie. A refused request's body is drained (up to
/// [`DRAIN_BYTES_MAX`]) so that the keep-alive connection stays usable.
fn gate(request: &HttpRequest<hyper::body::Incoming>, token: Option<&str>, ui: Option<&crate::ui::Ui>) -> Admission {
    if request.method() == http::Method::GET && request.uri().path() == "/health" {
        return Admission::Answered(json_response(200, json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})));
    }
    if let Some(ui) = ui.filter(|_| request.method() == http::Method::GET) {
        if let Some(page) = ui.route(request.uri().path(), request.uri().query(), request.headers()) {
            return Admission::Answered(page);
        }
    }
    authorized(request, token, ui)
}

/// What the gate decided about a request.
pub enum Admission {
    /// The token, or the Unix socket.
    Admitted,
    /// The dashboard's session cookie, from the daemon's own origin and host.
    ByCookie,
    /// Answered before jsonrpsee: health, a dashboard page, or a refusal (401, 403).
    Answered(HttpResponse),
}

/// Whether a TCP request may go on: the bearer token, or else the dashboard's session
/// cookie from the daemon's own origin (`ByCookie`; another origin or host is 403). `token` is `None` on the Unix socket. `GET /metrics` is judged by the same.
pub fn authorized<B>(request: &HttpRequest<B>, token: Option<&str>, ui: Option<&crate::ui::Ui>) -> Admission {
    if let Some(token) = token {
        let given = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_token(given.as_bytes(), token.as_bytes()) {
            match ui.map(|ui| ui.authorized(request.headers())) {
                Some(crate::ui::Access::Session) => return Admission::ByCookie,
                Some(crate::ui::Access::Refused) => return Admission::Answered(crate::ui::forbidden()),
                Some(crate::ui::Access::NoSession) | None => {}
            }
            return Admission::Answered(json_response(
                401,
                error_body(wire::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"),
            ));
        }
    }
    Admission::Admitted
}

/// A body over the limit is read and thrown away up to this much, so that the client
/// gets its 413 on a connection it can go on using; beyond it the connection is closed.
const DRAIN_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Why a body was not handed to jsonrpsee.
enum BodyRefusal {
    TooLarge { drained: bool },
    Broken,
}

/// Reads the whole body, up to [`REQUEST_BYTES_MAX`].
async fn read_body(body: hyper::body::Incoming) -> Result<bytes::Bytes, BodyRefusal> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyRefusal::Broken)?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > DRAIN_BYTES_MAX {
            return Err(BodyRefusal::TooLarge { drained: false });
        }
        if seen <= u64::from(REQUEST_BYTES_MAX) {
            kept.extend_from_slice(&data);
        }
    }
    if seen > u64::from(REQUEST_BYTES_MAX) {
        return Err(BodyRefusal::TooLarge { drained: true });
    }
    Ok(bytes::Bytes::from(kept))
}

/// The envelope of a single call, as far as it must be judged before jsonrpsee: its id,
/// version and method.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    jsonrpc: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a serde_json::value::RawValue>,
}

/// What JSON-RPC 2.0 says of a body that is not a request jsonrpsee should see: not
/// UTF-8 or not JSON (-32700), JSON that is no call (-32600), an id that is neither a
/// number, a string nor null, a `jsonrpc` other than "2.0", a `method` that is missing
/// or no string, an empty batch (-32600). jsonrpsee would refuse these too, but without
/// the `data.kind` every error of the contract has.
fn judge_body(body: &[u8]) -> Option<Value> {
    let parse_error = || Some(error_body(-32700, "parse_error", "the body is not valid JSON"));
    let invalid = || Some(error_body(-32600, "invalid_request", "not a JSON-RPC request"));
    let Ok(text) = std::str::from_utf8(body) else { return parse_error() };
    match text.trim_start().as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Envelope>(text) {
            Ok(envelope) => {
                let version = envelope.jsonrpc.is_some_and(|version| version.get() == r#""2.0""#);
                let method = envelope.method.is_some_and(|method| method.get().starts_with('"'));
                match envelope.id.map(|id| id.get().as_bytes()[0]) {
                    None | Some(b'"' | b'-' | b'0'..=b'9' | b'n') if version && method => None,
                    _ => invalid(),
                }
            }
            Err(error) if error.is_data() => invalid(),
            Err(_) => parse_error(),
        },
        Some(b'[') => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) if text.trim_start()[1..].trim_start().starts_with(']') => invalid(),
            Ok(_) => None,
            Err(_) => parse_error(),
        },
        _ => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => invalid(),
            Err(_) => parse_error(),
        },
    }
}

/// A single call as jsonrpsee's `Request` reads it, except for the id: kept as written
/// and read by [`call_id`], because the `Id` type tries its kinds in turn and builds an
/// error message for each that does not fit (a twentieth of a call's parse and answer).
#[derive(serde::Deserialize)]
struct Call<'a> {
    /// Read only to refuse a version other than "2.0".
    #[serde(rename = "jsonrpc")]
    _version: jsonrpsee::types::TwoPointZero,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// The ids jsonrpsee takes (null, a string, an integer from 0 to `u64::MAX`); `None` for
/// any other, which jsonrpsee then refuses as before.
fn call_id(raw: &RawValue) -> Option<Id<'static>> {
    match raw.get().as_bytes().first()? {
        b'n' => serde_json::from_str::<()>(raw.get()).ok().map(|()| Id::Null),
        b'"' => serde_json::from_str::<String>(raw.get()).ok().map(|id| Id::Str(id.into())),
        _ => serde_json::from_str::<u64>(raw.get()).ok().map(Id::Number),
    }
}

/// Health, token, body size and envelope, then a method of the direct table or jsonrpsee
/// (`rpc` makes its service, only for the requests that need it).
async fn handle<S>(
    request: HttpRequest<hyper::body::Incoming>,
    token: Option<Arc<str>>,
    ui: Option<Arc<crate::ui::Ui>>,
    api: Api,
    rpc: impl FnOnce() -> S,
) -> Result<HttpResponse, jsonrpsee::core::BoxError>
where
    S: tower::Service<HttpRequest<hyper::body::Incoming>, Response = HttpResponse, Error = jsonrpsee::core::BoxError>
        + tower::Service<
            HttpRequest<http_body_util::Full<bytes::Bytes>>,
            Response = HttpResponse,
            Error = jsonrpsee::core::BoxError,
        >,
{
    let mut request = request;
    match gate(&request, token.as_deref(), ui.as_deref()) {
        Admission::Answered(response) => {
            // Drain what the client sent so that its connection stays usable.
            let _ = read_body(request.into_body()).await;
            return Ok(response);
        }
        Admission::ByCookie => {
            request.extensions_mut().insert(crate::ui::CookieSession);
        }
        Admission::Admitted => {}
    }
    // Past the gate: the same authorization as a JSON-RPC call.
    if request.method() == http::Method::GET && request.uri().path() == "/metrics" {
        return Ok(crate::metrics::respond(&api.service).await);
    }
    if request.method() != http::Method::POST {
        // WebSocket upgrades and other methods: jsonrpsee answers them.
        return tower::Service::<HttpRequest<hyper::body::Incoming>>::call(&mut rpc(), request).await;
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|bytes| bytes > DRAIN_BYTES_MAX) {
        // Not worth reading to keep the connection: answer now and close it.
        let mut response =
            json_response(413, error_body(wire::VALIDATION_ERROR, "request_too_large", "request body over 2 MiB"));
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return Ok(response);
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(BodyRefusal::TooLarge { drained }) => {
            let mut response =
                json_response(413, error_body(wire::VALIDATION_ERROR, "request_too_large", "request body over 2 MiB"));
            if !drained {
                response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            return Ok(response);
        }
        Err(BodyRefusal::Broken) => {
            let mut response = json_response(400, error_body(-32700, "parse_error", "the request body ended early"));
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            return Ok(response);
        }
    };
    // jsonrpsee refuses (415) a body whose content type is not JSON.
    let json = jsonrpsee::server::http::is_json(parts.headers.get(http::header::CONTENT_TYPE));
    if let Some(answer) = json.then(|| api.direct_answer(&body)).flatten() {
        return Ok(jsonrpsee::server::http::response::ok_response(answer.await));
    }
    if let Some(error) = judge_body(&body) {
        return Ok(json_response(400, error));
    }
    let request = HttpRequest::from_parts(parts, http_body_util::Full::new(body));
    tower::Service::<HttpRequest<http_body_util::Full<bytes::Bytes>>>::call(&mut rpc(), request).await
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<HttpResponse, jsonrpsee::core::BoxError>> + Send>>;

/// The shape API.md ("Errors") gives every error, `data.kind` and `data.details`, on the
/// answers jsonrpsee makes itself (-32601 for an unknown method, -32600 for a batch entry
/// that is no request, a batch answer too large), where it sends no `data`. Answers our
/// methods make already have it and pass untouched.
#[derive(Clone)]
struct ContractErrors<S> {
    inner: S,
}

/// The `data.kind` of a JSON-RPC error code that jsonrpsee answers by itself.
fn protocol_kind(code: i32) -> &'static str {
    match code {
        -32700 => "parse_error",
        -32600 => "invalid_request",
        -32601 => "method_not_found",
        -32602 => "invalid_params",
        -32603 => "internal",
        _ => "server_error",
    }
}

/// `response` with `data.kind` added when it is an error without one.
fn with_error_kind(response: MethodResponse, id: jsonrpsee::types::Id<'_>) -> MethodResponse {
    if response.as_error_code().is_none() {
        return response;
    }
    let Ok(answer) = serde_json::from_str::<Value>(response.as_json().get()) else { return response };
    let error = &answer["error"];
    if error["data"]["kind"].is_string() {
        return response;
    }
    let code = error["code"].as_i64().and_then(|code| i32::try_from(code).ok()).unwrap_or(-32603);
    let message = error["message"].as_str().unwrap_or_default();
    let mut data = json!({"kind": protocol_kind(code), "details": message});
    if let Some(sent) = error.get("data").filter(|sent| !sent.is_null()) {
        data["sent"] = sent.clone();
    }
    let object = ErrorObjectOwned::owned(code, message, Some(data));
    let extensions = response.extensions().clone();
    let rebuilt = if response.is_subscription() {
        MethodResponse::subscription_error(id, object)
    } else {
        MethodResponse::error(id, object)
    };
    rebuilt.with_extensions(extensions)
}

impl<S> RpcServiceT for ContractErrors<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: jsonrpsee::types::Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move {
            let id = request.id.clone().into_owned();
            let subscription = request.method_name() == "logs.follow.v1";
            let response = inner.call(request).await;
            // jsonrpsee answers a subscription over plain HTTP with -32603, a code the
            // contract has no place for: it is a request this transport cannot carry.
            if subscription && response.as_error_code() == Some(-32603) {
                let message = "logs.follow.v1 is a subscription: call it over a WebSocket";
                let data = json!({"kind": "websocket_required", "details": message});
                let extensions = response.extensions().clone();
                return MethodResponse::error(id, ErrorObjectOwned::owned(-32600, message, Some(data)))
                    .with_extensions(extensions);
            }
            with_error_kind(response, id)
        }
    }

    /// jsonrpsee's own batch loop calls its inner service, past this layer: so the loop
    /// is here again, each call going through [`ContractErrors::call`].
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut answers = BatchResponseBuilder::new_with_limit(RESPONSE_BYTES_MAX as usize);
            let mut notified = false;
            for entry in batch {
                let answer = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(notification)) => {
                        notified = true;
                        this.inner.notification(notification).await;
                        continue;
                    }
                    Err(error) => {
                        let (error, id) = error.into_parts();
                        with_error_kind(MethodResponse::error(id.clone(), error), id)
                    }
                };
                if let Err(too_large) = answers.append(answer) {
                    return with_error_kind(too_large, jsonrpsee::types::Id::Null);
                }
            }
            if answers.is_empty() && notified {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(answers.finish())
            }
        }
    }

    fn notification<'a>(&self, notification: Notification<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(notification)
    }
}

/// Serves connections from `accept` until `stop`, each through the gate.
/// A token bucket per connection: `per_second` requests a second, bursts of twice that.
struct Bucket {
    tokens: f64,
    refilled: std::time::Instant,
    per_second: f64,
}

impl Bucket {
    fn new(per_second: u32) -> Bucket {
        let per_second = f64::from(per_second.max(1));
        Bucket { tokens: per_second * 2.0, refilled: std::time::Instant::now(), per_second }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Result<(), u64> {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second * 2.0);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - self.tokens) / self.per_second * 1000.0).ceil().max(1.0) as u64)
    }
}

fn throttled(retry_after_ms: u64) -> HttpResponse {
    let mut body = error_body(wire::THROTTLED, "throttled", "too many requests on this connection");
    body["error"]["data"]["retry_after_ms"] = json!(retry_after_ms);
    let mut response = json_response(429, body);
    response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry_after_ms.div_ceil(1000)));
    response
}

async fn serve<S, A, Fut>(
    mut accept: A,
    api: Api,
    stop: StopHandle,
    token: Option<Arc<str>>,
    ui: Option<Arc<crate::ui::Ui>>,
    rate_per_second: u32,
) where
    A: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let config = ServerConfig::builder()
        .max_request_body_size(REQUEST_BYTES_MAX)
        .max_response_body_size(RESPONSE_BYTES_MAX)
        .max_connections(10_000)
        .build();
    let errors = RpcServiceBuilder::new().layer_fn(|inner| ContractErrors { inner });
    let builder = Server::builder().set_config(config).set_rpc_middleware(errors).to_service_builder();
    loop {
        let socket = tokio::select! {
            accepted = accept() => match accepted {
                Ok(socket) => socket,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.clone().shutdown() => return,
        };
        let api = api.clone();
        let stop_for_service = stop.clone();
        let builder = builder.clone();
        let token = token.clone();
        let ui = ui.clone();
        let bucket = Arc::new(std::sync::Mutex::new(Bucket::new(rate_per_second)));
        let service = tower::service_fn(move |request: HttpRequest<hyper::body::Incoming>| -> BoxedResponse {
            if let Err(retry_after_ms) = bucket.lock().expect("bucket lock").take() {
                return Box::pin(async move {
                    let _ = read_body(request.into_body()).await;
                    Ok(throttled(retry_after_ms))
                });
            }
            let rpc = {
                let (builder, methods, stop) = (builder.clone(), api.methods.clone(), stop_for_service.clone());
                move || builder.build(methods, stop)
            };
            Box::pin(handle(request, token.clone(), ui.clone(), api.clone(), rpc))
        });
        tokio::spawn(serve_with_graceful_shutdown(socket, service, stop.clone().shutdown()));
    }
}

/// The bound listeners, before serving starts.
pub struct Listeners {
    pub tcp: TcpListener,
    pub unix: UnixListener,
}

/// Starts serving; the handle stops the listeners.
/// `ui` is served on TCP only (`/ui/`), and learns there the address it is bound to.
pub fn start(
    listeners: Listeners,
    api: Api,
    token: String,
    rate_per_second: u32,
    ui: Arc<crate::ui::Ui>,
) -> ServerHandle {
    let (stop, handle) = stop_channel();
    let Listeners { tcp, unix } = listeners;
    if let Ok(addr) = tcp.local_addr() {
        ui.bind(addr);
    }
    let token: Arc<str> = Arc::from(token);
    info!(addr = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving JSON-RPC on TCP");
    tokio::spawn(serve(
        {
            let tcp = Arc::new(tcp);
            move || {
                let tcp = Arc::clone(&tcp);
                async move { tcp.accept().await.map(|(socket, _)| socket) }
            }
        },
        api.clone(),
        stop.clone(),
        Some(token),
        Some(ui),
        rate_per_second,
    ));
    tokio::spawn(serve(
        {
            let unix = Arc::new(unix);
            move || {
                let unix = Arc::clone(&unix);
                async move { unix.accept().await.map(|(socket, _)| socket) }
            }
        },
        api,
        stop,
        None,
        None,
        rate_per_second,
    ));
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_writer_queue_answers_throttled_with_a_retry_time() {
        let error = service_error(ServiceError::Busy);
        assert_eq!(error.code(), wire::THROTTLED);
        let data: Value = serde_json::from_str(error.data().unwrap().get()).unwrap();
        assert_eq!((data["kind"].as_str(), data["retry_after_ms"].as_u64()), (Some("throttled"), Some(RETRY_AFTER_MS)));
        let store = service_error(ServiceError::Store(semantica_core::StoreError::Unavailable("disk full".into())));
        assert_eq!(store.code(), wire::DB_ERROR);
    }

    #[test]
    fn a_bucket_allows_a_burst_then_says_when_to_come_back() {
        let mut bucket = Bucket::new(10);
        for _ in 0..20 {
            assert!(bucket.take().is_ok());
        }
        let retry_after_ms = bucket.take().unwrap_err();
        assert!((1..=100).contains(&retry_after_ms), "{retry_after_ms}");
        std::thread::sleep(Duration::from_millis(retry_after_ms + 5));
        assert!(bucket.take().is_ok());
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"abcd", b"abc"));
        assert!(!same_token(b"", b"abc"));
    }

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        assert_eq!(decode_cursor(&encode_cursor(0)), Some(0));
        assert_eq!(decode_cursor(&encode_cursor(u64::MAX)), Some(u64::MAX));
        assert_eq!(decode_cursor("12"), None);
        assert_eq!(decode_cursor("cxyz"), None);
    }
}
