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

use semantica_client::{Client, DaemonInfo, Error as ClientError, ErrorKind};

mod big_payloads;
mod calls;
mod drain;
mod e2e;
mod enqueue;
mod history;
mod observe;
mod restart;
mod store;
mod storm;
mod target;

use calls::*;
use history::*;
use observe::CommitMeter;
use target::*;

/// Every scenario, in the order they run.
pub const SCENARIOS: [&str; 10] = [
    "enqueue",
    "enqueue_batch",
    "drain",
    "e2e",
    "subprocess",
    "supersede_storm",
    "restart",
    "history",
    "big_payloads",
    "store",
];

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
    /// database with 1,000,000 finished jobs × --scale), big_payloads, store (the engine
    /// and the SQLite store in this process, no daemon). Default: all.
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
    /// Run the fresh daemons of every scenario on this Postgres database (postgres://…)
    /// instead of SQLite, each scenario in a schema of its own, dropped after it; `store`
    /// runs its engine on it too. `history` is skipped (its prefill writes SQLite).
    #[arg(long, value_name = "URL", conflicts_with_all = ["addr", "home"])]
    pub store_url: Option<String>,
    /// With --store-url: this many daemons (1 to 3) on the one database per scenario,
    /// the clients of a scenario spread round-robin over them.
    #[arg(long, default_value_t = 1)]
    pub daemons: usize,
    /// While each scenario runs, scrape `/metrics` every second and keep a dashboard
    /// overview page open (its sign-in, assets and 2-second refresh); the counts of both
    /// come out as `observe_*` figures. Compare with a run without it.
    #[arg(long)]
    pub observe: bool,
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
    let bench = Bench { scale: args.scale, target, run_id: run_id(), observe: args.observe };
    eprintln!(
        "semantica bench: scale {}, {} run(s), scenarios {}, {}{}",
        args.scale,
        args.runs,
        selected.join(" "),
        bench.target.describe(),
        if args.observe { ", observed (a /metrics scrape every second and an open dashboard)" } else { "" }
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
                    if let Some(pg) = bench.target.pg() {
                        for row in &mut new_rows {
                            row.parameters.insert("store".into(), json!("postgres"));
                            if row.scenario != "store" {
                                row.parameters.insert("daemons".into(), json!(pg.daemons));
                            }
                        }
                    }
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
        "observe": args.observe,
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
    pub(crate) scale: f64,
    pub(crate) target: Target,
    pub(crate) run_id: String,
    /// `--observe`: every daemon a scenario measures is scraped and has a dashboard open.
    pub(crate) observe: bool,
}

/// What every job of one scenario shares: its queue (so counts are its own) and tag (so a
/// running daemon can be cleaned up).
#[derive(Clone)]
struct Labels {
    pub(crate) queue: String,
    pub(crate) tag: String,
    pub(crate) subject_prefix: String,
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
        let daemon = match &self.target {
            Target::Fresh { exe, base_dir, workers, store: None } => {
                start_daemon(exe, &self.home(base_dir, scenario, run, variant), *workers, None)?
            }
            Target::Fresh { exe, base_dir, workers, store: Some(pg) } => {
                let (schema, url) = pg.schema(schema_name(&self.run_id, run, scenario, variant))?;
                let mut first = start_daemon(exe, &self.home(base_dir, scenario, run, variant), *workers, Some(&url))?;
                for peer in 1..pg.daemons {
                    let home = self.home(base_dir, scenario, run, &format!("{variant}-d{peer}"));
                    first.peers.push(start_daemon(exe, &home, *workers, Some(&url))?);
                }
                first.schema = Some(schema);
                first
            }
            Target::Running { addr, token, pid } => Daemon {
                addr: addr.clone(),
                token: token.clone(),
                pid: *pid,
                child: None,
                home: None,
                observer: None,
                store_url: None,
                peers: Vec::new(),
                schema: None,
            },
        };
        Ok(self.observed(daemon))
    }

    /// `daemon`, watched from now on if `--observe` asks for it.
    fn observed(&self, mut daemon: Daemon) -> Daemon {
        if self.observe {
            daemon.observer = Some(observe::Observer::start(&daemon));
        }
        daemon
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
            "store" => self.store(run).await,
            "restart" => match self.target {
                Target::Fresh { .. } => Ok(vec![self.restart(run).await?]),
                Target::Running { .. } => {
                    eprintln!("  restart: skipped (it needs a daemon the bench starts itself)");
                    Ok(Vec::new())
                }
            },
            "history" => match self.target {
                Target::Fresh { store: Some(_), .. } => {
                    eprintln!("  history: skipped (its prefill writes a SQLite file)");
                    Ok(Vec::new())
                }
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
        if !daemon.peers.is_empty() {
            let peers_mib: f64 = daemon.peers.iter().filter_map(Daemon::peak_rss_mib).sum();
            figures.insert("peers_peak_rss_mib".into(), json!(round3(peers_mib)));
        }
        if let Some(observer) = &daemon.observer {
            observer.figures(figures);
        }
        if daemon.child.is_none() {
            cancel_tag(&daemon.client()?, &labels.tag).await?;
        }
        Ok(())
    }
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
