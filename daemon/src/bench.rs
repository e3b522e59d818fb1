//! `semantica bench`: reproducible load scenarios against a real daemon, measured from
//! the outside over the wire contract only.
//!
//! By default every scenario gets a fresh daemon (this very executable, `serve`, on a temp
//! `SEMANTICA_HOME` and port 0), so no scenario inherits another's rows. With `--addr` and
//! `--token`, or `--home`, the scenarios run one after another on a daemon that is already
//! running instead (each in its own queue and tag; `restart` is skipped there).
//!
//! It promises figures, never verdicts: the machine is shared, so nothing here asserts a
//! time. It must never reach into the daemon's internals; a figure that needs the daemon's
//! own clock comes from the job view (`created_at`, `started_at`, `finished_at`). The one
//! exception is `history`'s prefill, which writes finished jobs through the store port
//! into a home no daemon has opened yet: a million jobs over the wire would take longer
//! than the figures measured on top of them.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use semantica_adapters::{SqliteOptions, SqliteStore};
use semantica_core::{IdGen, Job, JobState, SeededIds, Store, Write, WriteSet};
use serde_json::{json, Map, Value};

use crate::client::{read_daemon_info, Client, ClientError};

/// Every scenario, in the order they run.
pub const SCENARIOS: [&str; 9] =
    ["enqueue", "enqueue_batch", "drain", "e2e", "subprocess", "supersede_storm", "restart", "history", "big_payloads"];

/// Sizes at `--scale 1`.
const ENQUEUE_JOBS: f64 = 100_000.0;
const ENQUEUE_CONNECTIONS: [usize; 2] = [1, 16];
const BATCH_TOTAL_JOBS: f64 = 1_000_000.0;
const BATCH_JOBS: usize = 1000;
const BATCH_CONNECTIONS: usize = 2;
const DRAIN_JOBS: f64 = 1_000_000.0;
const E2E_SECONDS: f64 = 60.0;
/// Below this an e2e window says nothing: the daemon has not reached a steady state.
const E2E_SECONDS_MIN: f64 = 1.0;
const E2E_CONNECTIONS: usize = 16;
/// Jobs per e2e connection whose enqueue-to-DONE latency is read back afterwards.
const E2E_SAMPLES_PER_CONNECTION: u64 = 200;
const SUBPROCESS_JOBS: f64 = 20_000.0;
const STORM_ENQUEUES: f64 = 100_000.0;
const STORM_SUBJECTS: f64 = 1000.0;
const STORM_CONNECTIONS: usize = 4;
const STORM_SLEEP_MS: u64 = 10;
const RESTART_JOBS: f64 = 1_000_000.0;
const HISTORY_JOBS: f64 = 1_000_000.0;
/// Finished jobs per write set of the history prefill: one SQLite transaction each.
const PREFILL_CHUNK_JOBS: u64 = 10_000;
/// The prefilled jobs finished over the day that ended an hour ago: well inside the
/// default retention (7 days), and nothing of them is due or running any more.
const HISTORY_SPAN_MS: u64 = 24 * 3_600_000;
const HISTORY_END_AGO_MS: u64 = 3_600_000;
/// The target: a figure on a database with history is at least this share of the
/// same figure on a fresh one. `meets_0_8` in the table says whether it held.
const HISTORY_RATIO_MIN: f64 = 0.8;

/// A call that hangs longer than this is a failure, not a slow figure.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a fresh daemon may take to write `daemon.json`.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// THROTTLED answers retried per call before giving up.
const THROTTLED_RETRIES_MAX: u32 = 10_000;
/// `dev.event.v1` releases at most 100,000 jobs per call (core's FAN_OUT_JOBS_MAX).
const EVENT_CALLS_MAX: usize = 1000;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// `big_payloads`: `echo` jobs whose payload is about 1 MiB (the contract's limit).
const BIG_JOBS: f64 = 100.0;
const BIG_PAYLOAD_BYTES: usize = 1000 * 1024;
/// Far enough that no worker touches the `enqueue` scenarios' jobs.
const FAR_FUTURE_MS: u64 = 24 * 3_600_000;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Multiply every scenario's size by this (0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Run only this scenario (repeatable): enqueue, enqueue_batch, drain, e2e,
    /// subprocess, supersede_storm, restart, history (enqueue and drain again on a
    /// database with 1,000,000 finished jobs × --scale). Default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Run every scenario this many times and report the medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Target a running daemon at HOST:PORT (needs --token) instead of starting fresh ones.
    #[arg(long, requires = "token", conflicts_with = "home")]
    pub addr: Option<String>,
    /// The bearer token of --addr.
    #[arg(long)]
    pub token: Option<String>,
    /// Target the running daemon of this data directory (daemon.json and token).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// SEMANTICA_WORKERS of the daemons the bench starts (default: the daemon's own).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Where the bench's temp data directories go (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// With the global `--json`: write the results there (without PATH: JSON on stdout).
    #[arg(value_name = "PATH")]
    pub json_path: Option<PathBuf>,
}

/// One line of the table and one object of the JSON.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: &'static str,
    pub parameters: Map<String, Value>,
    pub figures: Map<String, Value>,
}

type BenchResult<T> = Result<T, String>;

/// Runs the bench; the exit code is 1 if a scenario failed.
pub async fn main(args: BenchArgs, json_output: bool) -> ExitCode {
    match run(args, json_output).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("semantica bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs, json_output: bool) -> BenchResult<bool> {
    if !(args.scale > 0.0 && args.scale <= 100.0) {
        return Err(format!("--scale {}: want a number above 0 and at most 100", args.scale));
    }
    if !(1..=100).contains(&args.runs) {
        return Err(format!("--runs {}: want 1 to 100", args.runs));
    }
    if let Some(unknown) = args.scenarios.iter().find(|name| !SCENARIOS.contains(&name.as_str())) {
        return Err(format!("unknown scenario {unknown:?}; known: {}", SCENARIOS.join(", ")));
    }
    let selected: Vec<&'static str> = SCENARIOS
        .iter()
        .copied()
        .filter(|name| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name))
        .collect();
    let target = Target::from_args(&args)?;
    let bench = Bench { scale: args.scale, target, run_id: run_id() };
    eprintln!(
        "semantica bench: scale {}, {} run(s), scenarios {}, {}",
        args.scale,
        args.runs,
        selected.join(" "),
        bench.target.describe()
    );
    let mut runs: Vec<Vec<Row>> = Vec::new();
    let mut failed = Vec::new();
    for run in 0..args.runs {
        let mut rows = Vec::new();
        for &scenario in &selected {
            eprintln!("[run {}/{}] {scenario}", run + 1, args.runs);
            let started = Instant::now();
            match bench.scenario(scenario, run).await {
                Ok(mut new_rows) => {
                    for row in &new_rows {
                        eprintln!("  {}", table_line(row));
                    }
                    rows.append(&mut new_rows);
                }
                Err(error) => {
                    eprintln!("  {scenario} failed: {error}");
                    failed.push(format!("{scenario} (run {}): {error}", run + 1));
                }
            }
            eprintln!("  ({:.1} s)", started.elapsed().as_secs_f64());
        }
        runs.push(rows);
    }
    let mut rows = medians(&runs);
    compare_history(&mut rows);
    println!("{}", table(&rows, args.runs));
    let report = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "scale": args.scale,
        "runs": args.runs,
        "workers": bench.target.workers(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "target": bench.target.describe(),
        "scenarios": rows.iter().map(|row| json!({
            "scenario": row.scenario,
            "parameters": row.parameters,
            "figures": row.figures,
        })).collect::<Vec<_>>(),
        "failed": failed,
    });
    let text = serde_json::to_string_pretty(&report).expect("JSON prints");
    match (&args.json_path, json_output) {
        (Some(path), _) => std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?,
        (None, true) => println!("{text}"),
        (None, false) => {}
    }
    for failure in &failed {
        eprintln!("failed: {failure}");
    }
    Ok(failed.is_empty())
}

fn run_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), now % 0xfff_ffff)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

// ---- where the daemon comes from ----------------------------------------------------

enum Target {
    /// A fresh daemon per scenario, started from `exe`.
    Fresh { exe: PathBuf, base_dir: PathBuf, workers: Option<usize> },
    /// A daemon someone else runs.
    Running { addr: String, token: String, pid: Option<u32> },
}

impl Target {
    fn from_args(args: &BenchArgs) -> BenchResult<Target> {
        if let Some(addr) = &args.addr {
            let token = args.token.clone().ok_or("--addr needs --token")?;
            return Ok(Target::Running { addr: addr.clone(), token, pid: None });
        }
        if let Some(home) = &args.home {
            let info = read_daemon_info(home).map_err(|e| e.to_string())?;
            let token = match std::env::var("SEMANTICA_TOKEN").ok().filter(|t| !t.is_empty()) {
                Some(token) => token,
                None => std::fs::read_to_string(home.join("token"))
                    .map_err(|e| format!("{}: {e}", home.join("token").display()))?
                    .trim()
                    .to_owned(),
            };
            return Ok(Target::Running { addr: info.rpc_addr, token, pid: Some(info.pid) });
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let base_dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        if let Some(workers) = args.workers {
            if !(1..=1024).contains(&workers) {
                return Err(format!("--workers {workers}: want 1 to 1024"));
            }
        }
        Ok(Target::Fresh { exe, base_dir, workers: args.workers })
    }

    fn describe(&self) -> String {
        match self {
            Target::Fresh { exe, base_dir, workers } => format!(
                "fresh daemon per scenario ({} serve, homes in {}, workers {})",
                exe.display(),
                base_dir.display(),
                workers.map(|w| w.to_string()).unwrap_or_else(|| "default".into())
            ),
            Target::Running { addr, .. } => format!("running daemon at {addr}"),
        }
    }

    /// The workers the daemon runs with, as far as the bench can tell.
    fn workers(&self) -> Value {
        match self {
            Target::Fresh { workers: Some(workers), .. } => json!(workers),
            Target::Fresh { workers: None, .. } => {
                json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
            }
            Target::Running { .. } => Value::Null,
        }
    }

    fn workers_count(&self) -> usize {
        self.workers().as_u64().unwrap_or(2) as usize
    }
}

/// A daemon a scenario talks to; a fresh one is killed and its home removed on drop.
struct Daemon {
    addr: String,
    token: String,
    pid: Option<u32>,
    child: Option<Child>,
    home: Option<PathBuf>,
}

impl Daemon {
    fn client(&self) -> BenchResult<Client> {
        Client::with_token(&self.addr, &self.token, CALL_TIMEOUT).map_err(|e| e.to_string())
    }

    /// The daemon's peak resident memory so far (VmHWM), in MiB, when it runs here.
    fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.pid?)
    }

    /// SIGTERM, and wait for the daemon to exit (a fresh one only).
    fn stop(&mut self) -> BenchResult<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the daemon did not stop within 60 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(home) = &self.home {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Starts `exe serve` on `home` and waits for its `daemon.json`.
fn start_daemon(exe: &Path, home: &Path, workers: Option<usize>) -> BenchResult<Daemon> {
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    let _ = std::fs::remove_file(home.join("daemon.json"));
    let log = File::create(home.join("daemon.log")).map_err(|e| format!("{}: {e}", home.display()))?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .env("SEMANTICA_HOME", home)
        .env("SEMANTICA_RPC_ADDR", "127.0.0.1:0")
        .env_remove("SEMANTICA_TOKEN")
        .env_remove("SEMANTICA_DB_PATH")
        .env_remove("SEMANTICA_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // Per-job info lines would measure the log file, not the queue; RUST_LOG overrides.
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }
    if let Some(workers) = workers {
        command.env("SEMANTICA_WORKERS", workers.to_string());
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
    let started = Instant::now();
    loop {
        if let Ok(info) = read_daemon_info(home) {
            if info.pid == child.id() {
                let token = std::fs::read_to_string(home.join("token")).map_err(|e| e.to_string())?.trim().to_owned();
                return Ok(Daemon {
                    addr: info.rpc_addr,
                    token,
                    pid: Some(info.pid),
                    child: Some(child),
                    home: Some(home.to_owned()),
                });
            }
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let log = std::fs::read_to_string(home.join("daemon.log")).unwrap_or_default();
            return Err(format!("the daemon exited early ({status}): {}", log.trim()));
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            return Err(format!("no daemon.json after {} s", START_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// CPU time spent during a phase: the daemon's (per thread, to see whether one thread is
/// the bottleneck) and this process's, the clients'. Linux `/proc` only.
struct CpuMeter {
    pid: Option<u32>,
    started: Instant,
    threads: BTreeMap<u32, (String, u64)>,
    client_ticks: u64,
}

/// `/proc` reports CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// The command name and user + system ticks of a `/proc/.../stat` file.
fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return BTreeMap::new() };
    tasks
        .filter_map(|task| {
            let tid: u32 = task.ok()?.file_name().to_str()?.parse().ok()?;
            Some((tid, stat_ticks(&format!("/proc/{pid}/task/{tid}/stat"))?))
        })
        .collect()
}

impl CpuMeter {
    fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            started: Instant::now(),
            threads: pid.map(thread_ticks).unwrap_or_default(),
            client_ticks: stat_ticks("/proc/self/stat").map(|(_, ticks)| ticks).unwrap_or(0),
        }
    }

    /// `daemon_cpu_pct`, `client_cpu_pct` (100 = one core busy) and the daemon's busiest
    /// thread.
    fn figures(&self, figures: &mut Map<String, Value>) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = |ticks: u64| (ticks as f64 / TICKS_PER_SECOND / seconds * 100.0).round();
        if let Some((_, client)) = stat_ticks("/proc/self/stat") {
            figures.insert("client_cpu_pct".into(), json!(pct(client.saturating_sub(self.client_ticks))));
        }
        let Some(pid) = self.pid else { return };
        let now = thread_ticks(pid);
        let spent: Vec<(&str, u64)> = now
            .iter()
            .map(|(tid, (name, ticks))| {
                let before = self.threads.get(tid).map(|(_, t)| *t).unwrap_or(0);
                (name.as_str(), ticks.saturating_sub(before))
            })
            .collect();
        figures.insert("daemon_cpu_pct".into(), json!(pct(spent.iter().map(|(_, t)| t).sum())));
        if let Some((name, ticks)) = spent.iter().max_by_key(|(_, ticks)| *ticks) {
            figures.insert("busiest_thread".into(), json!(format!("{name} {}%", pct(*ticks))));
        }
    }
}

// ---- calls -------------------------------------------------------------------------

/// One call; THROTTLED answers wait `retry_after_ms` and try again (counted).
async fn call(client: &Client, method: &str, params: &Value, throttled: &AtomicU64) -> BenchResult<Value> {
    for _ in 0..THROTTLED_RETRIES_MAX {
        let map = params.as_object().cloned().unwrap_or_default();
        match client.call(method, map).await {
            Ok(value) => return Ok(value),
            Err(ClientError::Rpc { code: 4003, data, .. }) => {
                throttled.fetch_add(1, Ordering::Relaxed);
                let wait_ms = data.as_ref().and_then(|d| d["retry_after_ms"].as_u64()).unwrap_or(10).clamp(1, 1000);
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(error) => return Err(format!("{method}: {error}")),
        }
    }
    Err(format!("{method}: still THROTTLED after {THROTTLED_RETRIES_MAX} tries"))
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    queued: u64,
    scheduled: u64,
    running: u64,
    done: u64,
    failed: u64,
    cancelled: u64,
    superseded: u64,
    skipped: u64,
}

impl Counts {
    fn open(&self) -> u64 {
        self.queued + self.scheduled + self.running
    }

    fn total(&self) -> u64 {
        self.open() + self.done + self.failed + self.cancelled + self.superseded + self.skipped
    }
}

async fn counts(client: &Client, queue: &str) -> BenchResult<Counts> {
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
async fn wait_counts(
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
struct Progress {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Progress {
    fn start(label: String, total: u64) -> Progress {
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

// ---- figures -----------------------------------------------------------------------

/// Latencies in microseconds, sorted on read.
fn percentile_ms(sorted_us: &[u64], quantile: f64) -> f64 {
    assert!(!sorted_us.is_empty(), "a percentile of nothing");
    assert!((0.0..=1.0).contains(&quantile));
    let index = ((sorted_us.len() - 1) as f64 * quantile).round() as usize;
    sorted_us[index] as f64 / 1000.0
}

fn latency_figures(figures: &mut Map<String, Value>, mut latencies_us: Vec<u64>, prefix: &str) {
    if latencies_us.is_empty() {
        return;
    }
    latencies_us.sort_unstable();
    figures.insert(format!("{prefix}p50_ms"), json!(round3(percentile_ms(&latencies_us, 0.5))));
    figures.insert(format!("{prefix}p99_ms"), json!(round3(percentile_ms(&latencies_us, 0.99))));
    figures.insert(format!("{prefix}max_ms"), json!(round3(percentile_ms(&latencies_us, 1.0))));
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    (count as f64 / elapsed.as_secs_f64().max(1e-6)).round()
}

fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect()
}

/// Row by row, the median of each numeric figure over the runs (rows match by position).
fn medians(runs: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = runs.iter().max_by_key(|rows| rows.len()) else { return Vec::new() };
    first
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let same: Vec<&Row> = runs
                .iter()
                .filter_map(|rows| rows.get(index))
                .filter(|other| other.scenario == row.scenario && other.parameters == row.parameters)
                .collect();
            let mut figures = Map::new();
            for (key, value) in &row.figures {
                let mut values: Vec<f64> = same.iter().filter_map(|r| r.figures.get(key)?.as_f64()).collect();
                if values.len() < 2 || value.as_f64().is_none() {
                    figures.insert(key.clone(), value.clone());
                    continue;
                }
                values.sort_by(f64::total_cmp);
                let median = if values.len() % 2 == 1 {
                    values[values.len() / 2]
                } else {
                    (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
                };
                figures.insert(key.clone(), json!(round3(median)));
            }
            let mut parameters = row.parameters.clone();
            parameters.insert("runs".into(), json!(same.len()));
            Row { scenario: row.scenario, parameters, figures }
        })
        .collect()
}

const TABLE_MAIN: [&str; 5] = ["jobs_per_s", "p50_ms", "p99_ms", "max_ms", "peak_rss_mib"];

fn number(value: Option<&Value>) -> String {
    match value.and_then(Value::as_f64) {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

fn key_values(map: &Map<String, Value>, skip: &[&str]) -> String {
    map.iter()
        .filter(|(key, _)| !skip.contains(&key.as_str()))
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other if other.is_number() => format!("{key}={}", number(Some(other))),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn table_line(row: &Row) -> String {
    format!(
        "{:<16} {:<44} {:>10} {:>9} {:>9} {:>9} {:>9}  {}",
        row.scenario,
        key_values(&row.parameters, &["runs"]),
        number(row.figures.get("jobs_per_s")),
        number(row.figures.get("p50_ms")),
        number(row.figures.get("p99_ms")),
        number(row.figures.get("max_ms")),
        number(row.figures.get("peak_rss_mib")),
        key_values(&row.figures, &TABLE_MAIN)
    )
}

fn table(rows: &[Row], runs: usize) -> String {
    let mut lines = vec![format!(
        "{:<16} {:<44} {:>10} {:>9} {:>9} {:>9} {:>9}  {}",
        "scenario", "parameters", "jobs/s", "p50 ms", "p99 ms", "max ms", "RSS MiB", "other figures"
    )];
    lines.extend(rows.iter().map(table_line));
    if runs > 1 {
        lines.push(format!("(medians of {runs} runs)"));
    }
    lines.join("\n")
}

// ---- the scenarios -----------------------------------------------------------------

struct Bench {
    scale: f64,
    target: Target,
    run_id: String,
}

/// What every job of one scenario shares: its queue (so counts are its own) and tag (so a
/// running daemon can be cleaned up).
#[derive(Clone)]
struct Labels {
    queue: String,
    tag: String,
    subject_prefix: String,
}

impl Bench {
    fn size(&self, base: f64) -> u64 {
        (base * self.scale).round().max(1.0) as u64
    }

    fn labels(&self, scenario: &str, run: usize, variant: &str) -> Labels {
        let name = format!("bench-{}-{run}-{}{variant}", self.run_id, scenario.replace('_', "-"));
        Labels { queue: name.clone(), tag: name.clone(), subject_prefix: name }
    }

    /// The data directory of a fresh daemon, emptied.
    fn home(&self, base_dir: &Path, scenario: &str, run: usize, variant: &str) -> PathBuf {
        let home = base_dir.join(format!("semantica-bench-{}-{run}-{scenario}{variant}", self.run_id));
        let _ = std::fs::remove_dir_all(&home);
        home
    }

    fn daemon(&self, scenario: &str, run: usize, variant: &str) -> BenchResult<Daemon> {
        match &self.target {
            Target::Fresh { exe, base_dir, workers } => {
                start_daemon(exe, &self.home(base_dir, scenario, run, variant), *workers)
            }
            Target::Running { addr, token, pid } => {
                Ok(Daemon { addr: addr.clone(), token: token.clone(), pid: *pid, child: None, home: None })
            }
        }
    }

    async fn scenario(&self, name: &'static str, run: usize) -> BenchResult<Vec<Row>> {
        match name {
            "enqueue" => {
                let mut rows = Vec::new();
                for connections in ENQUEUE_CONNECTIONS {
                    rows.push(self.enqueue(run, connections).await?);
                }
                Ok(rows)
            }
            "enqueue_batch" => Ok(vec![self.enqueue_batch(run).await?]),
            "drain" => Ok(vec![self.drain(run, "drain", DRAIN_JOBS, noop_job).await?]),
            "e2e" => Ok(vec![self.e2e(run).await?]),
            "subprocess" => Ok(vec![self.drain(run, "subprocess", SUBPROCESS_JOBS, true_job).await?]),
            "supersede_storm" => Ok(vec![self.supersede_storm(run).await?]),
            "big_payloads" => Ok(vec![self.big_payloads(run).await?]),
            "restart" => match self.target {
                Target::Fresh { .. } => Ok(vec![self.restart(run).await?]),
                Target::Running { .. } => {
                    eprintln!("  restart: skipped (it needs a daemon the bench starts itself)");
                    Ok(Vec::new())
                }
            },
            "history" => match self.target {
                Target::Fresh { .. } => self.history(run).await,
                Target::Running { .. } => {
                    eprintln!("  history: skipped (it prefills a database before its daemon starts)");
                    Ok(Vec::new())
                }
            },
            other => Err(format!("unknown scenario {other}")),
        }
    }

    /// The end of every scenario: the daemon's peak RSS, and on a running daemon the
    /// scenario's leftovers cancelled.
    async fn finish(&self, daemon: &Daemon, labels: &Labels, figures: &mut Map<String, Value>) -> BenchResult<()> {
        if let Some(mib) = daemon.peak_rss_mib() {
            figures.insert("peak_rss_mib".into(), json!(round3(mib)));
        }
        if daemon.child.is_none() {
            cancel_tag(&daemon.client()?, &labels.tag).await?;
        }
        Ok(())
    }

    /// `enqueue`: single calls of jobs due tomorrow, so no worker competes with them.
    async fn enqueue(&self, run: usize, connections: usize) -> BenchResult<Row> {
        let variant = format!("-c{connections}");
        let daemon = self.daemon("enqueue", run, &variant)?;
        let labels = self.labels("enqueue", run, &variant);
        let jobs = self.size(ENQUEUE_JOBS);
        let figures = self.measure_enqueue(&daemon, &labels, jobs, connections).await?;
        Ok(Row { scenario: "enqueue", parameters: enqueue_parameters(jobs, connections), figures })
    }

    /// The figures of `enqueue` on a daemon that is already up.
    async fn measure_enqueue(
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
        let cpu = CpuMeter::start(daemon.pid);
        let outcome = enqueue_singly(daemon, labels, jobs, connections, template, "enqueue").await?;
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        figures.insert("jobs_per_s".into(), json!(rate(jobs, outcome.elapsed)));
        latency_figures(&mut figures, outcome.latencies_us, "");
        figures.insert("throttled".into(), json!(outcome.throttled));
        self.finish(daemon, labels, &mut figures).await?;
        Ok(figures)
    }

    /// `enqueue_batch`: `dev.enqueue_batch.v1` of 1,000 jobs due tomorrow.
    async fn enqueue_batch(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("enqueue_batch", run, "")?;
        let labels = self.labels("enqueue_batch", run, "");
        let jobs = self.size(BATCH_TOTAL_JOBS);
        let at_ms = now_ms() + FAR_FUTURE_MS;
        let template = move |labels: &Labels, index: u64| {
            let mut job = noop_job(labels, index);
            job["schedule"] = json!({"at": at_ms});
            job
        };
        let cpu = CpuMeter::start(daemon.pid);
        let outcome = enqueue_batches(&daemon, &labels, jobs, BATCH_CONNECTIONS, template, "enqueue_batch").await?;
        let mut figures = Map::new();
        cpu.figures(&mut figures);
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

    /// `drain` and `subprocess`: jobs enqueued in batches, held back by an event, then
    /// released at once; throughput from the first start to the last end, on the
    /// daemon's own clock.
    async fn drain(
        &self,
        run: usize,
        scenario: &'static str,
        base: f64,
        job: fn(&Labels, u64) -> Value,
    ) -> BenchResult<Row> {
        let daemon = self.daemon(scenario, run, "")?;
        let labels = self.labels(scenario, run, "");
        let jobs = self.size(base);
        let figures = self.measure_drain(&daemon, &labels, scenario, jobs, job).await?;
        Ok(Row { scenario, parameters: self.drain_parameters(scenario, jobs), figures })
    }

    fn drain_parameters(&self, scenario: &str, jobs: u64) -> Map<String, Value> {
        let kind = if scenario == "subprocess" { "exec true" } else { "noop" };
        params(&[("jobs", json!(jobs)), ("job", json!(kind)), ("workers", self.target.workers())])
    }

    /// The figures of `drain` (or `subprocess`) on a daemon that is already up; `label`
    /// names the phases in the progress lines.
    async fn measure_drain(
        &self,
        daemon: &Daemon,
        labels: &Labels,
        label: &str,
        jobs: u64,
        job: fn(&Labels, u64) -> Value,
    ) -> BenchResult<Map<String, Value>> {
        let event = format!("{}-go", labels.queue);
        let held = {
            let event = event.clone();
            move |labels: &Labels, index: u64| {
                let mut value = job(labels, index);
                value["conditions"] = json!({"wait_for_event": event});
                value
            }
        };
        let loaded = enqueue_batches(daemon, labels, jobs, BATCH_CONNECTIONS, held, label).await?;
        let client = daemon.client()?;
        let cpu = CpuMeter::start(daemon.pid);
        let released_at = Instant::now();
        let mut released = 0u64;
        for _ in 0..EVENT_CALLS_MAX {
            let answer = call(&client, "dev.event.v1", &json!({"name": event}), &AtomicU64::new(0)).await?;
            let count = answer["released_count"].as_u64().unwrap_or(0);
            if count == 0 {
                break;
            }
            released += count;
        }
        let release_elapsed = released_at.elapsed();
        if released != jobs {
            return Err(format!("the event released {released} jobs, not {jobs}"));
        }
        let timeout = Duration::from_secs(120 + jobs / 100);
        let end = wait_counts(&client, &labels.queue, timeout, label, |c| c.open() == 0).await?;
        let wall = released_at.elapsed();
        let mut figures = Map::new();
        cpu.figures(&mut figures);
        let (first_start_ms, last_end_ms) = span_ms(&client, &labels.queue).await?;
        let span = Duration::from_millis(last_end_ms.saturating_sub(first_start_ms).max(1));
        figures.insert("jobs_per_s".into(), json!(rate(end.done, span)));
        figures.insert("done".into(), json!(end.done));
        figures.insert("not_done".into(), json!(end.total() - end.done));
        figures.insert("first_start_to_last_end_s".into(), json!(round3(span.as_secs_f64())));
        figures.insert("release_ms".into(), json!(round3(release_elapsed.as_secs_f64() * 1000.0)));
        figures.insert("release_to_all_ended_s".into(), json!(round3(wall.as_secs_f64())));
        figures.insert("load_jobs_per_s".into(), json!(rate(jobs, loaded.elapsed)));
        self.finish(daemon, labels, &mut figures).await?;
        Ok(figures)
    }

    /// `e2e`: 16 connections enqueue `noop` jobs while the workers drain them; a few
    /// jobs per connection are read back for their enqueue-to-DONE latency.
    async fn e2e(&self, run: usize) -> BenchResult<Row> {
        let daemon = self.daemon("e2e", run, "")?;
        let labels = self.labels("e2e", run, "");
        let window = Duration::from_secs_f64((E2E_SECONDS * self.scale).max(E2E_SECONDS_MIN));
        let progress = Progress::start("e2e enqueued".into(), 0);
        let cpu = CpuMeter::start(daemon.pid);
        let stop_at = Instant::now() + window;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for connection in 0..E2E_CONNECTIONS {
            let client = daemon.client()?;
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

    /// `supersede_storm`: many enqueues over few subjects of a 10 ms job: how many ran.
    async fn supersede_storm(&self, run: usize) -> BenchResult<Row> {
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
        let cpu = CpuMeter::start(daemon.pid);
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

    /// `big_payloads`: N `echo` jobs of 1 MiB each, enqueued one by one, paged through
    /// with `dev.query_jobs.v1` at its largest limit while they run, then waited for: the
    /// peak RSS must follow the 8 MiB page bound, not the jobs' total size.
    async fn big_payloads(&self, run: usize) -> BenchResult<Row> {
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

    /// `restart`: a home with N waiting jobs (held by an event that never comes), the
    /// daemon stopped, then the time from `serve` to the first answered call.
    async fn restart(&self, run: usize) -> BenchResult<Row> {
        let Target::Fresh { exe, workers, .. } = &self.target else { unreachable!("restart needs a fresh daemon") };
        let mut first = self.daemon("restart", run, "")?;
        let labels = self.labels("restart", run, "");
        let jobs = self.size(RESTART_JOBS);
        let event = format!("{}-never", labels.queue);
        let held = move |labels: &Labels, index: u64| {
            let mut value = noop_job(labels, index);
            value["conditions"] = json!({"wait_for_event": event});
            value
        };
        let loaded = enqueue_batches(&first, &labels, jobs, BATCH_CONNECTIONS, held, "restart load").await?;
        let client = first.client()?;
        let probe = call(
            &client,
            "dev.query_jobs.v1",
            &json!({"filter": {"queue": [labels.queue]}, "limit": 1}),
            &AtomicU64::new(0),
        )
        .await?;
        let job_id = probe["items"][0]["id"].clone();
        let first_peak_mib = first.peak_rss_mib();
        first.stop()?;
        let home = first.home.take().expect("a fresh daemon has a home");
        drop(first);
        let started = Instant::now();
        let mut second = start_daemon(exe, &home, *workers)?;
        let daemon_json = started.elapsed();
        let client = second.client()?;
        let answered = loop {
            match client.call("dev.get.v1", params(&[("job_id", job_id.clone())])).await {
                Ok(_) => break started.elapsed(),
                Err(ClientError::NoDaemon(_)) if started.elapsed() < START_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(error) => return Err(format!("the restarted daemon did not answer: {error}")),
            }
        };
        let counts_after = counts(&client, &labels.queue).await?;
        if counts_after.scheduled != jobs {
            return Err(format!("after the restart {} of {jobs} jobs are still waiting", counts_after.scheduled));
        }
        let mut figures = Map::new();
        figures.insert("serve_ms".into(), json!(round3(answered.as_secs_f64() * 1000.0)));
        figures.insert("daemon_json_ms".into(), json!(round3(daemon_json.as_secs_f64() * 1000.0)));
        figures.insert("load_jobs_per_s".into(), json!(rate(jobs, loaded.elapsed)));
        if let Some(mib) = first_peak_mib {
            figures.insert("load_peak_rss_mib".into(), json!(round3(mib)));
        }
        let size = |name: &str| std::fs::metadata(home.join(name)).map(|m| m.len()).unwrap_or(0);
        let db_bytes = size("jobs.db") + size("jobs.db-wal");
        figures.insert("db_mib".into(), json!(round3(db_bytes as f64 / 1024.0 / 1024.0)));
        second.home = Some(home);
        self.finish(&second, &labels, &mut figures).await?;
        Ok(Row { scenario: "restart", parameters: params(&[("jobs_waiting", json!(jobs))]), figures })
    }

    /// `history`: the `enqueue` (1 and 16 connections) and `drain` figures again, one after
    /// another on one daemon whose database held N finished `noop` jobs before it started.
    /// Each `enqueue` phase's jobs are cancelled before the next phase, so what piles up
    /// stays finished.
    async fn history(&self, run: usize) -> BenchResult<Vec<Row>> {
        let Target::Fresh { exe, base_dir, workers } = &self.target else {
            unreachable!("history needs a fresh daemon")
        };
        let home = self.home(base_dir, "history", run, "");
        let done_labels = self.labels("history", run, "-done");
        let history_jobs = self.size(HISTORY_JOBS);
        let seed = now_ms() ^ (u64::from(std::process::id()) << 40) ^ run as u64;
        let prefilled = prefill(&home, &done_labels, history_jobs, seed).await;
        let prefill_elapsed = match prefilled {
            Ok(elapsed) => elapsed,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&home);
                return Err(error);
            }
        };
        let daemon = start_daemon(exe, &home, *workers)?;
        let client = daemon.client()?;
        let stats_started = Instant::now();
        let stored = counts(&client, &done_labels.queue).await?;
        let stats_elapsed = stats_started.elapsed();
        if stored.done != history_jobs || stored.total() != history_jobs {
            return Err(format!("the daemon sees {stored:?} in the history queue, not {history_jobs} DONE jobs"));
        }
        let mut shared = Map::new();
        shared.insert("history_rows".into(), json!(stored.done));
        shared.insert("prefill_s".into(), json!(round3(prefill_elapsed.as_secs_f64())));
        shared.insert("prefill_rows_per_s".into(), json!(rate(history_jobs, prefill_elapsed)));
        // admin.stats.v1 counts every row; the bench polls it while it waits for a drain.
        shared.insert("stats_ms".into(), json!(round3(stats_elapsed.as_secs_f64() * 1000.0)));
        let with_history = |measures: &str, parameters: Map<String, Value>| {
            let mut all = params(&[("measures", json!(measures)), ("history_jobs", json!(history_jobs))]);
            all.extend(parameters);
            all
        };
        let mut rows = Vec::new();
        for connections in ENQUEUE_CONNECTIONS {
            let labels = self.labels("history", run, &format!("-enqueue-c{connections}"));
            let jobs = self.size(ENQUEUE_JOBS);
            let mut figures = self.measure_enqueue(&daemon, &labels, jobs, connections).await?;
            cancel_tag(&client, &labels.tag).await?;
            figures.extend(shared.clone());
            rows.push(Row {
                scenario: "history",
                parameters: with_history("enqueue", enqueue_parameters(jobs, connections)),
                figures,
            });
        }
        let labels = self.labels("history", run, "-drain");
        let jobs = self.size(DRAIN_JOBS);
        let mut figures = self.measure_drain(&daemon, &labels, "history drain", jobs, noop_job).await?;
        figures.extend(shared);
        rows.push(Row {
            scenario: "history",
            parameters: with_history("drain", self.drain_parameters("drain", jobs)),
            figures,
        });
        Ok(rows)
    }
}

fn enqueue_parameters(jobs: u64, connections: usize) -> Map<String, Value> {
    params(&[("jobs", json!(jobs)), ("connections", json!(connections)), ("jobs_due", json!("in 24 h"))])
}

/// Cancels every live job of `tag`, in as many calls as the daemon's fan-out limit needs.
async fn cancel_tag(client: &Client, tag: &str) -> BenchResult<()> {
    for _ in 0..EVENT_CALLS_MAX {
        let cancelled = call(client, "dev.cancel.v1", &json!({"tag": tag}), &AtomicU64::new(0)).await?;
        if cancelled["cancelled_count"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
    }
    Err(format!("jobs of tag {tag} were still live after {EVENT_CALLS_MAX} cancels"))
}

/// Writes `jobs` finished jobs into the database of `home` (which no daemon has open) off
/// the async threads, with progress lines; returns how long it took, closing included.
async fn prefill(home: &Path, labels: &Labels, jobs: u64, seed: u64) -> BenchResult<Duration> {
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    // The daemon's own name for its database (config.rs) when SEMANTICA_DB_PATH is unset,
    // which start_daemon makes sure of.
    let db_path = home.join("jobs.db");
    let progress = Progress::start("history prefill".into(), jobs);
    let (labels, done) = (labels.clone(), Arc::clone(&progress.done));
    tokio::task::spawn_blocking(move || prefill_store(&db_path, &labels, jobs, seed, &done))
        .await
        .map_err(|e| e.to_string())?
}

fn prefill_store(db_path: &Path, labels: &Labels, jobs: u64, seed: u64, done: &AtomicU64) -> BenchResult<Duration> {
    let started = Instant::now();
    let store_error = |e: semantica_core::StoreError| format!("history prefill: {e}");
    let mut store = SqliteStore::open(db_path, &SqliteOptions::default())
        .map_err(|e| format!("history prefill: {}: {e}", db_path.display()))?;
    if store.max_seq().map_err(store_error)? != 0 {
        return Err(format!("history prefill: {} is not empty", db_path.display()));
    }
    let mut ids = SeededIds::new(seed);
    let end_ms = now_ms().saturating_sub(HISTORY_END_AGO_MS);
    let mut first = 0;
    while first < jobs {
        let last = (first + PREFILL_CHUNK_JOBS).min(jobs);
        let writes = (first..last).map(|index| Write::Insert(finished_job(labels, index, jobs, end_ms, &mut ids)));
        store.commit(&WriteSet { writes: writes.collect() }).map_err(store_error)?;
        done.store(last, Ordering::Relaxed);
        first = last;
    }
    let max_seq = store.max_seq().map_err(store_error)?;
    assert_eq!(max_seq, jobs, "the prefill wrote sequences 1..={jobs}");
    drop(store);
    Ok(started.elapsed())
}

/// Job `index` of `jobs`, as the engine leaves a `noop` job of the bench that ran once and
/// succeeded: enqueued, due and started at once, finished a millisecond later. The jobs
/// finish evenly over `HISTORY_SPAN_MS` up to `end_ms`, in `seq` order.
fn finished_job(labels: &Labels, index: u64, jobs: u64, end_ms: u64, ids: &mut SeededIds) -> Job {
    assert!(index < jobs);
    let id = ids.next_id();
    // As the engine draws a trace id when the request has none.
    let trace_id = format!("{:032x}", ids.next_id().as_u128());
    let created_at_ms = end_ms.saturating_sub(HISTORY_SPAN_MS) + index * HISTORY_SPAN_MS / jobs;
    let job = Job {
        seq: index + 1,
        queue: labels.queue.clone(),
        job_type: "noop".to_owned(),
        subject_key: format!("{}-{index}", labels.subject_prefix),
        generation: 1,
        state: JobState::Done,
        attempts: 1,
        tag: Some(labels.tag.clone()),
        trace_id,
        created_at_ms,
        due_at_ms: created_at_ms,
        started_at_ms: Some(created_at_ms + 1),
        finished_at_ms: Some(created_at_ms + 2),
        // Inserts carry version 1 (the store asserts it); the engine's own DONE row would
        // have been updated to a higher one, which no query reads.
        ..Job::blank(id)
    };
    assert!(job.state.is_terminal() && job.wake_at_ms.is_none() && !job.reap_pending);
    assert!(job.attempts <= job.max_attempts);
    job
}

/// Adds to each `history` row `ratio_to_fresh`, its `jobs_per_s` over the same figure of
/// the fresh scenario it repeats, and `meets_0_8`, whether that ratio reaches
/// [`HISTORY_RATIO_MIN`]; when this invocation measured no such fresh figure, neither.
fn compare_history(rows: &mut [Row]) {
    let without = |parameters: &Map<String, Value>, skip: &[&str]| -> Map<String, Value> {
        parameters
            .iter()
            .filter(|(key, _)| !skip.contains(&key.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let fresh: Vec<(String, Map<String, Value>, f64)> = rows
        .iter()
        .filter(|row| row.scenario != "history")
        .filter_map(|row| {
            let jobs_per_s = row.figures.get("jobs_per_s")?.as_f64()?;
            Some((row.scenario.to_owned(), without(&row.parameters, &["runs"]), jobs_per_s))
        })
        .collect();
    for row in rows.iter_mut().filter(|row| row.scenario == "history") {
        let Some(measures) = row.parameters.get("measures").and_then(Value::as_str) else { continue };
        let parameters = without(&row.parameters, &["runs", "measures", "history_jobs"]);
        let Some(fresh_per_s) = fresh
            .iter()
            .find(|(scenario, fresh_parameters, _)| scenario == measures && *fresh_parameters == parameters)
            .map(|(_, _, jobs_per_s)| *jobs_per_s)
            .filter(|jobs_per_s| *jobs_per_s > 0.0)
        else {
            continue;
        };
        let Some(history_per_s) = row.figures.get("jobs_per_s").and_then(Value::as_f64) else { continue };
        let ratio = history_per_s / fresh_per_s;
        row.figures.insert("ratio_to_fresh".into(), json!(round3(ratio)));
        row.figures.insert("meets_0_8".into(), json!(ratio >= HISTORY_RATIO_MIN));
    }
}

fn noop_job(labels: &Labels, index: u64) -> Value {
    json!({
        "job_type": "noop",
        "queue": labels.queue,
        "subject_key": format!("{}-{index}", labels.subject_prefix),
        "tag": labels.tag,
    })
}

fn true_job(labels: &Labels, index: u64) -> Value {
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
async fn span_ms(client: &Client, queue: &str) -> BenchResult<(u64, u64)> {
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

struct Outcome {
    elapsed: Duration,
    latencies_us: Vec<u64>,
    throttled: u64,
}

/// `jobs` single `dev.enqueue.v1` calls over `connections` keep-alive connections; job
/// `i` goes to connection `i % connections`.
async fn enqueue_singly(
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
        let client = daemon.client()?;
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
async fn enqueue_batches(
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
        let client = daemon.client()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(figure: f64) -> Row {
        Row {
            scenario: "drain",
            parameters: params(&[("jobs", json!(10))]),
            figures: params(&[("jobs_per_s", json!(figure))]),
        }
    }

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.5), 51.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&[7000], 0.99), 7.0);
    }

    #[test]
    fn medians_take_the_middle_run_of_each_figure() {
        let rows = medians(&[vec![row(3.0)], vec![row(1.0)], vec![row(2.0)]]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].figures["jobs_per_s"], json!(2.0));
        assert_eq!(rows[0].parameters["runs"], json!(3));
    }

    fn history_row(measures: &str, connections: u64, figure: f64) -> Row {
        Row {
            scenario: "history",
            parameters: params(&[
                ("measures", json!(measures)),
                ("history_jobs", json!(1000)),
                ("connections", json!(connections)),
                ("runs", json!(1)),
            ]),
            figures: params(&[("jobs_per_s", json!(figure))]),
        }
    }

    fn enqueue_row(connections: u64, figure: f64) -> Row {
        Row {
            scenario: "enqueue",
            parameters: params(&[("connections", json!(connections)), ("runs", json!(3))]),
            figures: params(&[("jobs_per_s", json!(figure))]),
        }
    }

    #[test]
    fn history_rows_compare_with_the_fresh_figure_of_the_same_parameters() {
        let mut rows = vec![
            enqueue_row(1, 1000.0),
            enqueue_row(16, 4000.0),
            history_row("enqueue", 1, 900.0),
            history_row("enqueue", 16, 2000.0),
        ];
        compare_history(&mut rows);
        assert_eq!(rows[2].figures["ratio_to_fresh"], json!(0.9));
        assert_eq!(rows[2].figures["meets_0_8"], json!(true));
        assert_eq!(rows[3].figures["ratio_to_fresh"], json!(0.5));
        assert_eq!(rows[3].figures["meets_0_8"], json!(false));
        assert!(!rows[0].figures.contains_key("ratio_to_fresh"), "fresh rows stay as they were");
    }

    #[test]
    fn history_rows_without_a_fresh_figure_carry_no_ratio() {
        let mut rows = vec![enqueue_row(1, 1000.0), history_row("enqueue", 16, 900.0), history_row("drain", 0, 5.0)];
        compare_history(&mut rows);
        assert!(!rows[1].figures.contains_key("ratio_to_fresh"));
        assert!(!rows[1].figures.contains_key("meets_0_8"));
        assert!(!rows[2].figures.contains_key("ratio_to_fresh"));
    }

    #[test]
    fn prefilled_jobs_are_finished_in_sequence_and_in_the_past() {
        let labels = Labels { queue: "q".into(), tag: "t".into(), subject_prefix: "s".into() };
        let mut ids = SeededIds::new(7);
        let end_ms = 10 * HISTORY_SPAN_MS;
        let jobs: Vec<Job> = (0..4).map(|index| finished_job(&labels, index, 4, end_ms, &mut ids)).collect();
        for (index, job) in jobs.iter().enumerate() {
            assert_eq!(job.seq, index as u64 + 1);
            assert_eq!(job.state, JobState::Done);
            assert_eq!(job.subject_key, format!("s-{index}"));
            assert!(job.finished_at_ms.is_some_and(|t| t < end_ms));
            assert_eq!(job.trace_id.len(), 32);
        }
        assert!(jobs.windows(2).all(|pair| pair[0].id != pair[1].id && pair[0].created_at_ms < pair[1].created_at_ms));
    }

    #[test]
    fn a_failed_run_leaves_the_others_median() {
        let rows = medians(&[vec![row(4.0)], Vec::new(), vec![row(2.0)]]);
        assert_eq!(rows[0].figures["jobs_per_s"], json!(3.0));
        assert_eq!(rows[0].parameters["runs"], json!(2));
    }
}
