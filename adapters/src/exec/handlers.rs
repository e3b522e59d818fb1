//! In-process jobs: handlers registered by job type, the built-in ones of API.md, panic
//! isolation and cooperative cancellation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use semantica_core::{ErrorKind, Job, JobId, Outcome};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::subprocess::stopped;
use super::ExecConfig;

/// What a handler sees of its job.
pub struct HandlerContext {
    pub job_id: JobId,
    pub attempt: u32,
    pub payload: serde_json::Value,
    /// Opened on the first write: most handlers write nothing, and a file per job would
    /// cost a create (and later a delete) for every no-op.
    log: Option<File>,
    log_path: PathBuf,
    /// Bytes the log may still grow by (`ExecConfig::log_max_bytes`), known once opened.
    log_room: u64,
    log_max_bytes: u64,
    cancelled: Arc<AtomicBool>,
}

impl HandlerContext {
    /// Appends to the job's log.
    pub fn log(&mut self, text: &str) {
        if self.log.is_none() {
            if let Some(dir) = self.log_path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            self.log = OpenOptions::new().create(true).append(true).open(&self.log_path).ok();
            let len = self.log.as_ref().and_then(|log| log.metadata().ok()).map_or(0, |metadata| metadata.len());
            self.log_room = self.log_max_bytes.saturating_sub(len);
        }
        let Some(log) = &mut self.log else { return };
        if self.log_room == 0 {
            return;
        }
        if text.len() as u64 <= self.log_room {
            let _ = log.write_all(text.as_bytes());
            self.log_room -= text.len() as u64;
        } else {
            let room = self.log_room as usize;
            let _ = log.write_all(&text.as_bytes()[..room]);
            let max = self.log_max_bytes;
            let _ = writeln!(log, "\n[semantica] log reached {max} bytes (log_max_bytes): further output dropped");
            self.log_room = 0;
        }
    }

    /// The job was cancelled (or timed out): return soon; the outcome no longer counts.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Sleeps, waking early on cancel. Returns false when cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        while !self.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
        false
    }
}

/// A job type run inside the daemon. `Ok` carries the result summary (JSON text);
/// `Err` a message for `error.message`. Runs on a blocking thread; a panic fails the
/// attempt and nothing else.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String>;
}

impl<F> Handler for F
where
    F: Fn(&mut HandlerContext) -> Result<Option<serde_json::Value>, String> + Send + Sync + 'static,
{
    fn run(&self, context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String> {
        self(context)
    }
}

/// Handlers by job type.
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: BTreeMap<String, Arc<dyn Handler>>,
    /// The types whose handler does nothing and succeeds (`noop`): the engine may end
    /// their jobs in the claim step (`Config::instant_job_types`) instead of running them.
    instant: BTreeSet<String>,
}

impl Handlers {
    /// `noop`, `sleep`, `echo`, `fail` and `index_file`.
    pub fn builtin() -> Handlers {
        let mut handlers = Handlers::default();
        // Also registered as a handler: an engine that does not end it at once runs it.
        handlers.register("noop", |_: &mut HandlerContext| Ok(None));
        handlers.instant.insert("noop".to_owned());
        handlers.register("sleep", sleep);
        handlers.register("echo", echo);
        handlers.register("fail", fail);
        handlers.register("index_file", index_file);
        handlers
    }

    /// Registers (or replaces) the handler of `job_type`; a replaced instant type is no
    /// longer instant.
    pub fn register(&mut self, job_type: &str, handler: impl Handler) {
        self.by_type.insert(job_type.to_owned(), Arc::new(handler));
        self.instant.remove(job_type);
    }

    /// The job types, for the engine's `Config::job_types`.
    pub fn job_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// The job types whose jobs the engine may end at once, for `Config::instant_job_types`.
    pub fn instant_job_types(&self) -> impl Iterator<Item = &str> {
        self.instant.iter().map(String::as_str)
    }
}

fn sleep(context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String> {
    let ms = context.payload.get("ms").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if context.sleep(Duration::from_millis(ms)) {
        Ok(None)
    } else {
        Err("cancelled while sleeping".into())
    }
}

fn echo(context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String> {
    let payload = context.payload.clone();
    context.log(&format!("{payload}\n"));
    Ok(Some(payload))
}

fn fail(context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String> {
    // `times`: fail only the first N attempts; absent: fail every attempt.
    match context.payload.get("times").and_then(serde_json::Value::as_u64) {
        Some(times) if u64::from(context.attempt) > times => Ok(None),
        _ => Err(format!("failed on purpose (attempt {})", context.attempt)),
    }
}

fn index_file(context: &mut HandlerContext) -> Result<Option<serde_json::Value>, String> {
    let path = context.payload.get("path").and_then(serde_json::Value::as_str).ok_or("payload.path is required")?;
    let mut file = File::open(path).map_err(|error| format!("cannot open {path}: {error}"))?;
    let mut hasher = Sha256::new();
    let (mut bytes, mut newlines, mut last) = (0u64, 0u64, None);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if context.is_cancelled() {
            return Err("cancelled while reading".into());
        }
        let read = file.read(&mut buffer).map_err(|error| format!("cannot read {path}: {error}"))?;
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        hasher.update(chunk);
        bytes += read as u64;
        newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        last = chunk.last().copied();
    }
    // Newlines, plus one for a last line without one.
    let lines = newlines + u64::from(last.is_some_and(|b| b != b'\n'));
    let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(serde_json::json!({ "bytes": bytes, "lines": lines, "sha256": sha256 })))
}

/// Runs the handler of `job.job_type` on a blocking thread.
pub async fn run(
    job: &Job,
    config: &ExecConfig,
    handlers: &Handlers,
    mut stop: watch::Receiver<bool>,
    on_started: impl FnOnce(Option<u32>, Option<u64>),
) -> Outcome {
    let failed = |message: String| Outcome::Failed { kind: ErrorKind::HandlerError, exit_code: None, message };
    let Some(handler) = handlers.by_type.get(&job.job_type).cloned() else {
        return Outcome::Failed {
            kind: ErrorKind::SpawnFailed,
            exit_code: None,
            message: format!("no handler for job type {:?}", job.job_type),
        };
    };
    let payload = serde_json::from_str(&job.payload_json).unwrap_or(serde_json::Value::Null);
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut context = HandlerContext {
        job_id: job.id,
        attempt: job.attempts,
        payload,
        log: None,
        log_path: config.log_path(job.id),
        log_room: 0,
        log_max_bytes: config.log_max_bytes,
        cancelled: Arc::clone(&cancelled),
    };
    on_started(None, None);
    let task = tokio::task::spawn_blocking(move || {
        let result = catch_unwind(AssertUnwindSafe(|| handler.run(&mut context)));
        (result, context)
    });
    let watcher = tokio::spawn(async move {
        stopped(&mut stop).await;
        cancelled.store(true, Ordering::Release);
    });
    let joined = task.await;
    watcher.abort();
    match joined {
        Ok((Ok(Ok(result)), _)) => Outcome::Succeeded {
            exit_code: None,
            result_summary_json: result.map(|value| value.to_string()),
            artifacts: vec![],
        },
        Ok((Ok(Err(message)), mut context)) => {
            context.log(&format!("[semantica] failed: {message}\n"));
            failed(message)
        }
        Ok((Err(panic), _)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".into());
            failed(format!("handler panicked: {message}"))
        }
        Err(error) => failed(format!("handler task lost: {error}")),
    }
}
