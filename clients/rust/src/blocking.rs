//! The blocking client: the same methods as the async [`crate::Client`], each returning
//! when the answer is there, for programs without an async runtime. It drives the async
//! client on a single-threaded tokio runtime of its own; do not call it from inside an
//! async runtime (tokio refuses to block one).
//!
//! ```no_run
//! # fn example() -> Result<(), semantica_client::Error> {
//! use semantica_client::{blocking, types::EnqueueParams};
//! let client = blocking::Client::new()?; // as `Client::new` finds the daemon
//! let job = client.enqueue(&EnqueueParams::new("noop", "default", "readme"))?;
//! for text in client.follow(&job.job_id, 0)? {
//!     print!("{}", text?);
//! }
//! println!("{:?}", client.wait(&job.job_id, std::time::Duration::from_secs(30))?.job().state);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::types::*;
use crate::{Config, Discovery, Error};

/// A blocking client of one daemon. Cheap to clone; clones share the runtime and the
/// kept connections.
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

fn runtime() -> Result<Arc<tokio::runtime::Runtime>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Transport(format!("cannot make the client's runtime: {e}")))?;
    Ok(Arc::new(runtime))
}

/// A stream of the async client, read one item at a time on the blocking client's runtime.
pub struct Iter<T> {
    stream: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl<T> Iterator for Iter<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.stream.next())
    }
}

impl Client {
    fn of(inner: crate::Client) -> Result<Client, Error> {
        Ok(Client { inner, runtime: runtime()? })
    }

    /// As [`crate::Client::new`]: `SEMANTICA_URL`, else `$SEMANTICA_HOME/daemon.json`'s socket.
    pub fn new() -> Result<Client, Error> {
        Client::of(crate::Client::new()?)
    }

    pub fn with_discovery(discovery: Discovery) -> Result<Client, Error> {
        Client::of(crate::Client::with_discovery(discovery)?)
    }

    /// TCP to `url` (`http://host:port` or `host:port`) with `token`.
    pub fn with_url(url: &str, token: Option<&str>) -> Result<Client, Error> {
        Client::of(crate::Client::with_url(url, token))
    }

    /// The Unix socket at `path`.
    pub fn with_socket(path: impl AsRef<Path>) -> Result<Client, Error> {
        Client::of(crate::Client::with_socket(path))
    }

    /// As [`crate::Client::ensure_daemon`]: starts `semantica serve` when none answers.
    pub fn ensure_daemon() -> Result<Client, Error> {
        let runtime = runtime()?;
        let inner = runtime.block_on(crate::Client::ensure_daemon())?;
        Ok(Client { inner, runtime })
    }

    pub fn config(self, config: Config) -> Client {
        Client { inner: self.inner.config(config), runtime: self.runtime }
    }

    /// The async client this one drives.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// Any method by name (see [`crate::Client::call`]).
    pub fn call<P: Serialize, R: DeserializeOwned>(&self, method: &str, params: &P) -> Result<R, Error> {
        self.runtime.block_on(self.inner.call(method, params))
    }

    pub fn enqueue(&self, job: &EnqueueParams) -> Result<EnqueueResult, Error> {
        self.runtime.block_on(self.inner.enqueue(job))
    }

    /// 1–1000 jobs, all or nothing; results in order.
    pub fn enqueue_batch(&self, jobs: Vec<EnqueueParams>) -> Result<Vec<EnqueueResult>, Error> {
        self.runtime.block_on(self.inner.enqueue_batch(jobs))
    }

    /// The number of jobs cancelled.
    pub fn cancel(&self, selector: &CancelParams) -> Result<u64, Error> {
        self.runtime.block_on(self.inner.cancel(selector))
    }

    pub fn get(&self, job_id: &str) -> Result<JobView, Error> {
        self.runtime.block_on(self.inner.get(job_id))
    }

    /// The job once terminal, or as it is after `timeout` (at most 300 s).
    pub fn wait(&self, job_id: &str, timeout: Duration) -> Result<WaitResult, Error> {
        self.runtime.block_on(self.inner.wait(job_id, timeout))
    }

    /// One page of `dev.query_jobs.v1`.
    pub fn jobs_page(&self, query: &QueryJobsParams) -> Result<JobPage, Error> {
        self.runtime.block_on(self.inner.jobs_page(query))
    }

    /// Every job matching `query`, page after page; ends after the first error.
    pub fn jobs(&self, query: QueryJobsParams) -> Iter<JobView> {
        Iter { stream: Box::pin(self.inner.jobs(query)), runtime: Arc::clone(&self.runtime) }
    }

    /// Releases the jobs waiting for `name`; the number released.
    pub fn event(&self, name: &str) -> Result<u64, Error> {
        self.runtime.block_on(self.inner.event(name))
    }

    /// One chunk of a job's log from `offset` (`limit` bytes, default 64 KiB).
    pub fn logs(&self, job_id: &str, offset: u64, limit: Option<u64>) -> Result<LogChunk, Error> {
        self.runtime.block_on(self.inner.logs(job_id, offset, limit))
    }

    /// The job's log text from `offset` as it is written, until the job has ended.
    pub fn follow(&self, job_id: &str, offset: u64) -> Result<Iter<String>, Error> {
        let stream = self.runtime.block_on(self.inner.follow(job_id, offset))?;
        Ok(Iter { stream: Box::pin(stream), runtime: Arc::clone(&self.runtime) })
    }

    pub fn stats(&self) -> Result<Stats, Error> {
        self.runtime.block_on(self.inner.stats())
    }

    pub fn maintenance(&self, force_vacuum: bool) -> Result<MaintenanceResult, Error> {
        self.runtime.block_on(self.inner.maintenance(force_vacuum))
    }

    /// Enqueues ended jobs again (by `job_id`, or by `filter` up to `limit`).
    pub fn retry(&self, selector: &RetryParams) -> Result<Vec<EnqueueResult>, Error> {
        self.runtime.block_on(self.inner.retry(selector))
    }

    pub fn pause(&self, queue: &str) -> Result<QueuePaused, Error> {
        self.runtime.block_on(self.inner.pause(queue))
    }

    pub fn resume(&self, queue: &str) -> Result<QueuePaused, Error> {
        self.runtime.block_on(self.inner.resume(queue))
    }

    pub fn recurring_set(&self, recurring: &RecurringSetParams) -> Result<RecurringSetResult, Error> {
        self.runtime.block_on(self.inner.recurring_set(recurring))
    }

    pub fn recurring_list(&self) -> Result<Vec<RecurringJob>, Error> {
        self.runtime.block_on(self.inner.recurring_list())
    }

    /// Whether a recurring job of that name existed.
    pub fn recurring_delete(&self, name: &str) -> Result<bool, Error> {
        self.runtime.block_on(self.inner.recurring_delete(name))
    }

    /// Reads `config.toml` again (`admin.reload.v1`).
    pub fn reload(&self) -> Result<ReloadResult, Error> {
        self.runtime.block_on(self.inner.reload())
    }

    /// A one-time sign-in link to the web dashboard (`admin.ui_login.v1`).
    pub fn ui_login(&self) -> Result<UiLogin, Error> {
        self.runtime.block_on(self.inner.ui_login())
    }

    /// The daemon's OpenRPC document (`rpc.discover`).
    pub fn discover(&self) -> Result<Value, Error> {
        self.runtime.block_on(self.inner.discover())
    }
}
