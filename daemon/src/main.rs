//! `semantica`: `serve` runs the daemon; every other subcommand is a client of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use semantica_daemon::config::{home_from_env, DaemonConfig};
use semantica_daemon::time_args;
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[command(name = "semantica", version, about = "A local task orchestrator for developer tools")]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (SEMANTICA_HOME, SEMANTICA_RPC_ADDR, SEMANTICA_WORKERS, ...).
    Serve,
    /// Enqueue a job; `-- cmd args...` makes it a subprocess job.
    Enqueue(Box<EnqueueArgs>),
    /// Show a job.
    Get { job_id: String },
    /// Wait for a job to end.
    Wait {
        job_id: String,
        /// Give up after this long (at most 5m); exit code 3 then.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = time_args::duration_ms)]
        timeout: u64,
    },
    /// Cancel a job, or every job with a tag or chain group.
    Cancel {
        job_id: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// List jobs.
    Jobs {
        #[arg(long)]
        state: Vec<String>,
        #[arg(long)]
        queue: Vec<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        desc: bool,
    },
    /// Print a job's log (`-f` to follow it until the job ends).
    Logs {
        job_id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Signal an event that jobs wait for.
    Event { name: String },
    /// Queues and the system.
    Status {
        /// Redraw the table every second until interrupted (Ctrl-C).
        #[arg(long)]
        watch: bool,
    },
    /// Remove finished jobs past retention; vacuum when asked.
    Maintenance {
        #[arg(long)]
        vacuum: bool,
    },
    /// Stop starting jobs of a queue: running jobs finish, enqueue still works, and the
    /// pause survives a restart.
    Pause { queue: String },
    /// Start jobs of a paused queue again.
    Resume { queue: String },
    /// Enqueue ended jobs (FAILED, CANCELLED, SKIPPED_TTL, SKIPPED_DEADLINE) again as the
    /// next generation of their subject: one by id, or every one that matches.
    Retry(RetryArgs),
    /// Jobs enqueued on a cron schedule.
    #[command(subcommand)]
    Recurring(RecurringCommand),
    /// Make the daemon read config.toml again (as SIGHUP does), over its Unix socket.
    Reload,
    /// Open the web dashboard: asks the daemon (over its Unix socket) for a one-time
    /// sign-in link, prints it and opens it in the browser.
    Ui {
        /// Print the link only; do not start a browser.
        #[arg(long)]
        no_open: bool,
    },
    /// Print a completion script: `semantica completions bash > /etc/bash_completion.d/semantica`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): `semantica man | man -l -`, or one subcommand's page:
    /// `semantica man enqueue`.
    Man { subcommand: Option<String> },
    /// Measure a fresh daemon (or --addr/--home of a running one): throughput, latency,
    /// memory. `semantica bench --scale 0.1 --json results.json`.
    Bench(semantica_daemon::bench::BenchArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["job_id", "state"])))]
struct RetryArgs {
    /// The job to retry.
    job_id: Option<String>,
    /// Retry every job in this state (repeatable): FAILED, CANCELLED, SKIPPED_TTL, SKIPPED_DEADLINE.
    #[arg(long, conflicts_with = "job_id")]
    state: Vec<String>,
    #[arg(long, requires = "state")]
    queue: Vec<String>,
    #[arg(long, requires = "state")]
    tag: Option<String>,
    /// Retry at most this many (1 to 1000).
    #[arg(long, default_value_t = 100, requires = "state")]
    limit: u64,
    /// Do not ask before retrying by filter.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Subcommand)]
enum RecurringCommand {
    /// Create or replace a recurring job: `recurring set nightly --cron "0 3 * * *" -- make index`.
    Set(Box<RecurringSetArgs>),
    /// List the recurring jobs and their next slots.
    List,
    /// Delete a recurring job (the jobs it enqueued stay).
    Rm { name: String },
}

#[derive(clap::Args)]
struct RecurringSetArgs {
    name: String,
    /// Five fields: minute hour day-of-month month day-of-week.
    #[arg(long)]
    cron: String,
    /// An IANA time zone (`Europe/Berlin`); default UTC.
    #[arg(long)]
    tz: Option<String>,
    /// Default: `recurring:NAME`, so a slot supersedes the last one if it still waits.
    #[arg(long)]
    subject: Option<String>,
    #[command(flatten)]
    job: JobArgs,
}

#[derive(clap::Args)]
struct EnqueueArgs {
    #[arg(long)]
    subject: String,
    #[arg(long)]
    generation: Option<i64>,
    /// Retry back-off as JSON, e.g. '{"base_ms": 500, "factor": 2, "max_ms": 60000, "jitter": 0.1}'.
    #[arg(long)]
    backoff: Option<String>,
    /// Skipped if not started within this long of becoming due (e.g. 1h).
    #[arg(long, value_name = "DURATION", value_parser = time_args::duration_ms)]
    ttl: Option<u64>,
    /// Not started by then: skipped; running then: killed. Local time (2026-12-01T03:00),
    /// RFC 3339 with an offset, or epoch ms.
    #[arg(long, value_name = "TIME", value_parser = time_args::time_ms)]
    deadline: Option<u64>,
    /// Start no sooner than this long from now (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = time_args::duration_ms, conflicts_with = "at")]
    delay: Option<u64>,
    /// Start no sooner than this time: local (2026-12-01T03:00), RFC 3339 with an offset
    /// (2026-12-01T03:00:00+01:00), or epoch ms.
    #[arg(long, value_name = "TIME", value_parser = time_args::time_ms)]
    at: Option<u64>,
    #[arg(long)]
    wait_for_idle: bool,
    #[arg(long)]
    require_charging: bool,
    #[arg(long)]
    wait_for_event: Option<String>,
    #[arg(long)]
    parent: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    trace_id: Option<String>,
    /// Block until the job ends and print its outcome.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    job: JobArgs,
}

/// What `enqueue` and `recurring set` both say about a job.
#[derive(clap::Args)]
struct JobArgs {
    /// In-process job type (`noop`, `sleep`, `echo`, `fail`, `index_file`), or a name for
    /// a subprocess job.
    #[arg(long, default_value = "exec")]
    job_type: String,
    #[arg(long, default_value = "default")]
    queue: String,
    /// JSON payload.
    #[arg(long)]
    payload: Option<String>,
    #[arg(long)]
    priority: Option<i64>,
    #[arg(long)]
    max_attempts: Option<i64>,
    /// One attempt may run this long (e.g. 30s, 5m, 1h 30m), then it is killed.
    #[arg(long, value_name = "DURATION", value_parser = time_args::duration_ms)]
    timeout: Option<u64>,
    #[arg(long)]
    tag: Option<String>,
    /// Environment for a subprocess job, KEY=VALUE (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    #[arg(long)]
    cwd: Option<String>,
    /// The subprocess: program and arguments.
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "semantica", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { subcommand } => return man(subcommand.as_deref()),
        _ => {}
    }
    if matches!(cli.command, Command::Serve) {
        semantica_daemon::serve::tune_allocator();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match cli.command {
        Command::Serve => runtime.block_on(serve()),
        Command::Bench(args) => runtime.block_on(semantica_daemon::bench::main(args, cli.json)),
        command => match runtime.block_on(client_command(command, cli.json)) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("semantica: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `semantica man [SUBCOMMAND]`: the page of the whole command, which lists the
/// subcommands as `semantica-NAME(1)`, or the page of one of them.
fn man(subcommand: Option<&str>) -> ExitCode {
    let mut command = Cli::command();
    // Builds the subcommands' display names (`semantica-enqueue`), the title of their pages.
    command.build();
    let command = match subcommand {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(subcommand) => subcommand.clone(),
            None => {
                eprintln!("semantica: no subcommand {name:?}; `semantica --help` lists them");
                return ExitCode::from(2);
            }
        },
    };
    let mut page = Vec::new();
    if let Err(error) = clap_mangen::Man::new(command).render(&mut page) {
        eprintln!("semantica: {error}");
        return ExitCode::FAILURE;
    }
    use std::io::Write as _;
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) is no failure worth a message.
        Err(_) => ExitCode::FAILURE,
    }
}

async fn serve() -> ExitCode {
    let config = match DaemonConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("semantica: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    match semantica_daemon::serve::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("semantica: {}", error.message);
            ExitCode::from(error.exit_code)
        }
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let log = if json { log.json().boxed() } else { log.boxed() };
    // RUST_LOG filters the log only: the span export layer has a filter of its own.
    tracing_subscriber::registry().with(log.with_filter(filter)).with(semantica_daemon::otel::layer()).init();
    semantica_daemon::otel::log_status();
}

/// What ends a client command: a failed call, or the command's own trouble.
#[derive(Debug)]
enum ClientError {
    Call(semantica_client::Error),
    Other(String),
}

impl From<semantica_client::Error> for ClientError {
    fn from(error: semantica_client::Error) -> ClientError {
        ClientError::Call(error)
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Call(error) => error.fmt(f),
            ClientError::Other(detail) => f.write_str(detail),
        }
    }
}

/// The daemon, through the Rust client (`semantica-client`): found as its discovery
/// finds it (the Unix socket of `home`, or `SEMANTICA_URL` with a token). Answers stay
/// JSON, so that `--json` prints exactly what the daemon sent.
#[derive(Clone)]
struct Client(semantica_client::Client);

impl Client {
    /// `via_socket`: the Unix socket even when `SEMANTICA_URL` is set (methods that the
    /// daemon gives only there, or only to its own user).
    fn connect(home: &std::path::Path, via_socket: bool) -> Result<Client, ClientError> {
        let mut discovery = semantica_client::Discovery { home: Some(home.to_owned()), ..Default::default() };
        if !via_socket {
            let from_env = semantica_client::Discovery::from_env();
            discovery.url = from_env.url;
            discovery.token = from_env.token;
        }
        // `dev.wait.v1` waits up to 300 s; a throttled call is tried again (the default).
        let config = semantica_client::Config { timeout: Duration::from_secs(310), ..Default::default() };
        Ok(Client(semantica_client::Client::with_discovery(discovery)?.config(config)))
    }

    async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, ClientError> {
        Ok(self.0.call(method, &params).await?)
    }
}

fn object(pairs: Vec<(&str, Option<Value>)>) -> Map<String, Value> {
    pairs.into_iter().filter_map(|(key, value)| value.map(|v| (key.to_owned(), v))).collect()
}

fn payload(text: Option<&String>) -> Result<Option<Value>, ClientError> {
    text.map(|text| {
        serde_json::from_str::<Value>(text).map_err(|e| ClientError::Other(format!("--payload is not JSON: {e}")))
    })
    .transpose()
}

/// `exec` of a subprocess job: the program and its arguments, `--env KEY=VALUE`, `--cwd`.
fn exec_param(command: &[String], env: &[String], cwd: &Option<String>) -> Result<Option<Value>, ClientError> {
    let Some((program, rest)) = command.split_first() else { return Ok(None) };
    let mut pairs = BTreeMap::new();
    for pair in env {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| ClientError::Other(format!("--env {pair:?}: want KEY=VALUE")))?;
        pairs.insert(key.to_owned(), value.to_owned());
    }
    Ok(Some(json!({"command": program, "args": rest, "env": pairs, "cwd": cwd})))
}

/// The params of `dev.enqueue.v1` that [`JobArgs`] gives, and `subject_key`.
fn job_params(job: &JobArgs, subject_key: String) -> Result<Vec<(&'static str, Option<Value>)>, ClientError> {
    Ok(vec![
        ("job_type", Some(json!(job.job_type))),
        ("queue", Some(json!(job.queue))),
        ("subject_key", Some(json!(subject_key))),
        ("payload", payload(job.payload.as_ref())?),
        ("priority", job.priority.map(Value::from)),
        ("exec", exec_param(&job.command, &job.env, &job.cwd)?),
        ("max_attempts", job.max_attempts.map(Value::from)),
        ("timeout_ms", job.timeout.map(Value::from)),
        ("tag", job.tag.clone().map(Value::from)),
    ])
}

fn enqueue_params(args: &EnqueueArgs) -> Result<Map<String, Value>, ClientError> {
    let backoff = match &args.backoff {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| ClientError::Other(format!("--backoff is not JSON: {e}")))?,
        ),
        None => None,
    };
    let schedule = match (args.at, args.delay) {
        (Some(at), _) => Some(json!({ "at": at })),
        (None, Some(delay_ms)) => Some(json!({ "delay_ms": delay_ms })),
        (None, None) => None,
    };
    let conditions = (args.wait_for_idle || args.require_charging || args.wait_for_event.is_some()).then(|| {
        json!({"wait_for_idle": args.wait_for_idle, "require_charging": args.require_charging, "wait_for_event": args.wait_for_event})
    });
    let mut params = job_params(&args.job, args.subject.clone())?;
    params.extend([
        ("generation", args.generation.map(Value::from)),
        ("backoff", backoff),
        ("ttl_ms", args.ttl.map(Value::from)),
        ("deadline", args.deadline.map(Value::from)),
        ("schedule", schedule),
        ("conditions", conditions),
        ("parent_job_id", args.parent.clone().map(Value::from)),
        ("chain_group_id", args.group.clone().map(Value::from)),
        ("trace_id", args.trace_id.clone().map(Value::from)),
    ]);
    Ok(object(params))
}

/// The table of `semantica status`.
fn status_table(stats: &Value) -> String {
    let mut lines = vec![format!(
        "{:<16} {:>6} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>12} {:>15}",
        "queue",
        "paused",
        "queued",
        "scheduled",
        "running",
        "done",
        "failed",
        "cancelled",
        "superseded",
        "skipped",
        "avg wait ms",
        "oldest wait ms"
    )];
    for q in stats["queues"].as_array().into_iter().flatten() {
        // Value's Display ignores widths: format each number as text first.
        let n = |key: &str| q[key].to_string();
        lines.push(format!(
            "{:<16} {:>6} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>12} {:>15}",
            q["name"].as_str().unwrap_or(""),
            if q["paused"] == true { "yes" } else { "no" },
            n("queued"),
            n("scheduled"),
            n("running"),
            n("done"),
            n("failed"),
            n("cancelled"),
            n("superseded"),
            n("skipped"),
            n("avg_wait_ms"),
            n("oldest_wait_ms")
        ));
    }
    let system = &stats["system"];
    lines.push(format!(
        "cpu {}%  memory {}%  idle {}  on battery {}  db {} bytes (+{} wal)  up {} ms  version {}",
        system["cpu_usage"],
        system["memory_usage"],
        system["is_idle"],
        system["on_battery"],
        system["db_size"],
        system["db_wal_size"],
        system["uptime_ms"],
        system["version"].as_str().unwrap_or("")
    ));
    lines.join("\n")
}

fn print(value: &Value, json_output: bool, human: impl FnOnce(&Value) -> String) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
    } else {
        println!("{}", human(value));
    }
}

fn job_line(job: &Value) -> String {
    let s = |key: &str| job[key].as_str().unwrap_or("-").to_owned();
    format!(
        "{}  {:<16} {:<10} {:<12} gen {:<4} attempts {}/{}  {}",
        s("id"),
        s("state"),
        s("queue"),
        s("job_type"),
        job["generation"],
        job["attempts"],
        job["max_attempts"],
        s("subject_key")
    )
}

fn job_details(job: &Value) -> String {
    let mut lines = vec![job_line(job)];
    if let Some(error) = job["error"].as_object() {
        lines.push(format!(
            "error: {} ({})",
            error["kind"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("")
        ));
    }
    if !job["exit_code"].is_null() {
        lines.push(format!("exit code: {}", job["exit_code"]));
    }
    if !job["result_summary"].is_null() {
        lines.push(format!("result: {}", job["result_summary"]));
    }
    lines.join("\n")
}

async fn client_command(command: Command, json_output: bool) -> Result<ExitCode, ClientError> {
    let home: PathBuf = home_from_env().map_err(ClientError::Other)?;
    if let Command::Reload = command {
        return reload(&home, json_output).await;
    }
    if let Command::Ui { no_open } = command {
        return ui(&home, no_open, json_output).await;
    }
    let client = Client::connect(&home, false)?;
    match command {
        Command::Serve
        | Command::Bench(_)
        | Command::Reload
        | Command::Ui { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("handled above")
        }
        Command::Enqueue(args) => {
            let result = client.call("dev.enqueue.v1", enqueue_params(&args)?).await?;
            if !args.wait {
                print(&result, json_output, |r| {
                    format!("{} {}", r["job_id"].as_str().unwrap_or(""), r["state"].as_str().unwrap_or(""))
                });
                return Ok(ExitCode::SUCCESS);
            }
            let id = result["job_id"].clone();
            wait_for(&client, id, 300_000, json_output).await
        }
        Command::Get { job_id } => {
            let job = client.call("dev.get.v1", object(vec![("job_id", Some(json!(job_id)))])).await?;
            print(&job, json_output, job_details);
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait { job_id, timeout } => wait_for(&client, json!(job_id), timeout, json_output).await,
        Command::Cancel { job_id, tag, group } => {
            let params = object(vec![
                ("job_id", job_id.map(Value::from)),
                ("tag", tag.map(Value::from)),
                ("chain_group_id", group.map(Value::from)),
            ]);
            let result = client.call("dev.cancel.v1", params).await?;
            print(&result, json_output, |r| format!("cancelled {}", r["cancelled_count"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { state, queue, tag, limit, cursor, desc } => {
            let filter = object(vec![
                ("state", (!state.is_empty()).then(|| json!(state))),
                ("queue", (!queue.is_empty()).then(|| json!(queue))),
                ("tag", tag.map(Value::from)),
            ]);
            let params = object(vec![
                ("filter", Some(Value::Object(filter))),
                ("limit", Some(json!(limit))),
                ("cursor", cursor.map(Value::from)),
                ("sort", Some(json!(if desc { "DESC" } else { "ASC" }))),
            ]);
            let page = client.call("dev.query_jobs.v1", params).await?;
            print(&page, json_output, |page| {
                let mut lines: Vec<String> = page["items"].as_array().into_iter().flatten().map(job_line).collect();
                if let Some(next) = page["next_cursor"].as_str() {
                    lines.push(format!("more: --cursor {next}"));
                }
                lines.join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { job_id, follow } => {
            let mut offset = 0u64;
            loop {
                let params = object(vec![("job_id", Some(json!(job_id))), ("offset", Some(json!(offset)))]);
                let chunk = client.call("logs.tail.v1", params).await?;
                let text = chunk["chunk"].as_str().unwrap_or("");
                print!("{text}");
                offset = chunk["next_offset"].as_u64().unwrap_or(offset);
                let eof = chunk["eof"].as_bool().unwrap_or(true);
                if !follow || eof {
                    return Ok(ExitCode::SUCCESS);
                }
                if text.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Command::Event { name } => {
            let result = client.call("dev.event.v1", object(vec![("name", Some(json!(name)))])).await?;
            print(&result, json_output, |r| format!("released {}", r["released_count"]));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { watch } => loop {
            let stats = client.call("admin.stats.v1", Map::new()).await?;
            if watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Clear the screen and go home, so the table redraws in place.
                print!("\x1b[2J\x1b[H");
            }
            print(&stats, json_output, status_table);
            if !watch {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        },
        Command::Pause { queue } => {
            let result = client.call("admin.queue.pause.v1", object(vec![("queue", Some(json!(queue)))])).await?;
            print(&result, json_output, |r| format!("paused {}", r["queue"].as_str().unwrap_or("")));
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { queue } => {
            let result = client.call("admin.queue.resume.v1", object(vec![("queue", Some(json!(queue)))])).await?;
            print(&result, json_output, |r| format!("resumed {}", r["queue"].as_str().unwrap_or("")));
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry(args) => retry(&client, args, json_output).await,
        Command::Recurring(command) => recurring(&client, command, json_output).await,
        Command::Maintenance { vacuum } => {
            let result =
                client.call("admin.maintenance.v1", object(vec![("force_vacuum", Some(json!(vacuum)))])).await?;
            print(&result, json_output, |r| {
                format!("deleted {} jobs, {} logs; vacuumed {}", r["deleted_jobs"], r["deleted_logs"], r["vacuumed"])
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn retry(client: &Client, args: RetryArgs, json_output: bool) -> Result<ExitCode, ClientError> {
    let params = match &args.job_id {
        Some(id) => object(vec![("job_id", Some(json!(id)))]),
        None => {
            let filter = object(vec![
                ("state", Some(json!(args.state))),
                ("queue", (!args.queue.is_empty()).then(|| json!(args.queue))),
                ("tag", args.tag.clone().map(Value::from)),
            ]);
            let matching = count_matching(client, &filter, args.limit).await?;
            if matching == 0 {
                println!("no job matches");
                return Ok(ExitCode::SUCCESS);
            }
            if !args.yes && !confirm(&format!("retry {matching} job(s)? [y/N] "))? {
                println!("nothing retried");
                return Ok(ExitCode::FAILURE);
            }
            object(vec![("filter", Some(Value::Object(filter))), ("limit", Some(json!(args.limit)))])
        }
    };
    let result = client.call("dev.retry.v1", params).await?;
    print(&result, json_output, |r| {
        let results = r["results"].as_array().cloned().unwrap_or_default();
        let mut lines = vec![format!("retried {}", results.len())];
        lines.extend(results.iter().map(|job| {
            format!(
                "{} {} gen {}",
                job["job_id"].as_str().unwrap_or(""),
                job["state"].as_str().unwrap_or(""),
                job["generation"]
            )
        }));
        lines.join("\n")
    });
    Ok(ExitCode::SUCCESS)
}

/// `semantica reload`: `admin.reload.v1` on the Unix socket.
async fn reload(home: &std::path::Path, json_output: bool) -> Result<ExitCode, ClientError> {
    let result = Client::connect(home, true)?.call("admin.reload.v1", Map::new()).await?;
    print(&result, json_output, |r| {
        let keys = |key: &str| {
            let keys: Vec<&str> = r[key].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            keys.join(", ")
        };
        let mut text = match keys("changed") {
            changed if changed.is_empty() => "reloaded config.toml: nothing changed".to_owned(),
            changed => format!("reloaded config.toml: {changed} changed"),
        };
        let restart = keys("restart_required");
        if !restart.is_empty() {
            text.push_str(&format!("\n{restart}: take effect only when the daemon is started again"));
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}

/// `semantica ui`: `admin.ui_login.v1` on the Unix socket, then the browser.
async fn ui(home: &std::path::Path, no_open: bool, json_output: bool) -> Result<ExitCode, ClientError> {
    let login = Client::connect(home, true)?.call("admin.ui_login.v1", Map::new()).await?;
    let url = login["url"].as_str().unwrap_or_default().to_owned();
    print(&login, json_output, |_| format!("{url}\n(a one-time link, valid for 60 seconds)"));
    if !no_open {
        // The browser outlives us; its output is not ours to show.
        let opened = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(error) = opened {
            eprintln!("could not start a browser (xdg-open: {error}); open the link above yourself");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many jobs match `filter`, counting up to `limit`, through the pages of
/// `dev.query_jobs.v1` (what a retry by that filter would take).
async fn count_matching(client: &Client, filter: &Map<String, Value>, limit: u64) -> Result<u64, ClientError> {
    let mut count = 0;
    let mut cursor: Option<Value> = None;
    while count < limit {
        let params = object(vec![
            ("filter", Some(Value::Object(filter.clone()))),
            ("limit", Some(json!(200.min(limit - count)))),
            ("cursor", cursor.clone()),
        ]);
        let page = client.call("dev.query_jobs.v1", params).await?;
        count += page["items"].as_array().map_or(0, |items| items.len() as u64);
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(json!(next)),
            _ => break,
        }
    }
    Ok(count)
}

/// Asks on the terminal; anything but y or yes (or no answer at all) is no.
fn confirm(question: &str) -> Result<bool, ClientError> {
    use std::io::Write as _;
    print!("{question}");
    std::io::stdout().flush().map_err(|e| ClientError::Other(e.to_string()))?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| ClientError::Other(e.to_string()))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn utc(epoch_ms: &Value) -> String {
    epoch_ms
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "-".to_owned(), |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn recurring(client: &Client, command: RecurringCommand, json_output: bool) -> Result<ExitCode, ClientError> {
    match command {
        RecurringCommand::Set(args) => {
            let subject_key = args.subject.clone().unwrap_or_else(|| format!("recurring:{}", args.name));
            let job = object(job_params(&args.job, subject_key)?);
            let params = object(vec![
                ("name", Some(json!(args.name))),
                ("cron", Some(json!(args.cron))),
                ("timezone", args.tz.clone().map(Value::from)),
                ("job", Some(Value::Object(job))),
            ]);
            let result = client.call("dev.recurring.set.v1", params).await?;
            print(&result, json_output, |r| {
                format!("{}: next slot {}", r["name"].as_str().unwrap_or(""), utc(&r["next_at"]))
            });
        }
        RecurringCommand::List => {
            let result = client.call("dev.recurring.list.v1", Map::new()).await?;
            print(&result, json_output, |r| {
                let mut lines = vec![format!(
                    "{:<24} {:<16} {:<18} {:<21} {}",
                    "name", "cron", "time zone", "next slot (UTC)", "last job"
                )];
                for item in r["items"].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "{:<24} {:<16} {:<18} {:<21} {}",
                        item["name"].as_str().unwrap_or(""),
                        item["cron"].as_str().unwrap_or(""),
                        item["timezone"].as_str().unwrap_or(""),
                        utc(&item["next_at"]),
                        item["last_enqueued_job_id"].as_str().unwrap_or("-")
                    ));
                }
                lines.join("\n")
            });
        }
        RecurringCommand::Rm { name } => {
            let result = client.call("dev.recurring.delete.v1", object(vec![("name", Some(json!(name)))])).await?;
            let deleted = result["deleted"].as_bool() == Some(true);
            print(&result, json_output, |_| {
                if deleted {
                    format!("deleted {name}")
                } else {
                    format!("no recurring job {name}")
                }
            });
            if !deleted {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for a job and prints its outcome; the exit code says whether it ended `DONE`.
async fn wait_for(client: &Client, id: Value, timeout_ms: u64, json_output: bool) -> Result<ExitCode, ClientError> {
    let params = object(vec![("job_id", Some(id)), ("timeout_ms", Some(json!(timeout_ms.min(300_000))))]);
    let result = client.call("dev.wait.v1", params).await?;
    if result["timed_out"].as_bool() == Some(true) {
        print(&result, json_output, |r| format!("timed out; the job is {}", r["job"]["state"].as_str().unwrap_or("?")));
        return Ok(ExitCode::from(3));
    }
    print(&result, json_output, job_details);
    Ok(if result["state"] == "DONE" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
