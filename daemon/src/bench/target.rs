//! Where the daemon comes from: a fresh one per scenario or one already running; its
//! peak RSS and CPU time.

#[allow(unused_imports)]
use super::*;

// ---- where the daemon comes from ----------------------------------------------------

pub(crate) enum Target {
    /// A fresh daemon per scenario, started from `exe` (on SQLite, or on `store`'s Postgres).
    Fresh { exe: PathBuf, base_dir: PathBuf, workers: Option<usize>, store: Option<PgTarget> },
    /// A daemon someone else runs.
    Running { addr: String, token: String, pid: Option<u32> },
}

impl Target {
    pub(crate) fn from_args(args: &BenchArgs) -> BenchResult<Target> {
        if let Some(addr) = &args.addr {
            let token = args.token.clone().ok_or("--addr needs --token")?;
            return Ok(Target::Running { addr: addr.clone(), token, pid: None });
        }
        if let Some(home) = &args.home {
            let info = DaemonInfo::read(home).map_err(|e| e.to_string())?;
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
        if !(1..=DAEMONS_MAX).contains(&args.daemons) {
            return Err(format!("--daemons {}: want 1 to {DAEMONS_MAX}", args.daemons));
        }
        let store = match &args.store_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(PgTarget { url: url.clone(), daemons: args.daemons })
            }
            Some(_) => return Err("--store-url: want a postgres:// URL".into()),
            None if args.daemons > 1 => return Err("--daemons above 1 needs --store-url".into()),
            None => None,
        };
        Ok(Target::Fresh { exe, base_dir, workers: args.workers, store })
    }

    /// The Postgres database of `--store-url`, if given.
    pub(crate) fn pg(&self) -> Option<&PgTarget> {
        match self {
            Target::Fresh { store, .. } => store.as_ref(),
            Target::Running { .. } => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Fresh { exe, base_dir, workers, store } => format!(
                "fresh daemon{} per scenario ({} serve, homes in {}, workers {}{})",
                if store.as_ref().is_some_and(|pg| pg.daemons > 1) { "s" } else { "" },
                exe.display(),
                base_dir.display(),
                workers.map(|w| w.to_string()).unwrap_or_else(|| "default".into()),
                match store {
                    // Never the URL: it may hold a password.
                    Some(pg) => format!(", {} on Postgres, a schema each", pg.daemons),
                    None => ", on SQLite".into(),
                }
            ),
            Target::Running { addr, .. } => format!("running daemon at {addr}"),
        }
    }

    /// The workers the daemon runs with, as far as the bench can tell.
    pub(crate) fn workers(&self) -> Value {
        match self {
            Target::Fresh { workers: Some(workers), .. } => json!(workers),
            Target::Fresh { workers: None, .. } => {
                json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
            }
            Target::Running { .. } => Value::Null,
        }
    }

    pub(crate) fn workers_count(&self) -> usize {
        self.workers().as_u64().unwrap_or(2) as usize
    }
}

/// The most daemons `--daemons` starts on one database.
pub(crate) const DAEMONS_MAX: usize = 3;

/// `--store-url` and `--daemons`: every fresh daemon of a scenario on that Postgres
/// database, in a schema of the scenario's own (dropped after it).
#[derive(Clone)]
pub(crate) struct PgTarget {
    pub(crate) url: String,
    pub(crate) daemons: usize,
}

impl PgTarget {
    /// A fresh schema, created and migrated, and the URL a daemon gets for it (the schema
    /// first on the connection's search path).
    pub(crate) fn schema(&self, name: String) -> BenchResult<(PgSchema, String)> {
        let url = self.url.clone();
        let schema = PgSchema { url: self.url.clone(), name };
        let options = semantica_adapters::PgOptions { schema: Some(schema.name.clone()) };
        // The `postgres` client blocks on a runtime of its own: not on the bench's.
        std::thread::spawn(move || semantica_adapters::PgStore::open(&url, &options).map(drop))
            .join()
            .map_err(|_| "opening the Postgres store panicked".to_owned())?
            .map_err(|e| format!("the Postgres store of --store-url: {e}"))?;
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let daemon_url = format!("{}{separator}options=-csearch_path%3D{}", self.url, schema.name);
        Ok((schema, daemon_url))
    }
}

/// A schema the bench made; dropped with everything in it when this goes.
pub(crate) struct PgSchema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || semantica_adapters::PgStore::drop_schema(&url, &name)).join();
        if let Ok(Err(error)) = dropped {
            eprintln!("semantica bench: could not drop schema {}: {error}", self.name);
        }
    }
}

/// A schema name for a scenario's daemons: lower-case letters, digits and `_`.
pub(crate) fn schema_name(run_id: &str, run: usize, scenario: &str, variant: &str) -> String {
    let name = format!("bench_{run_id}_{run}_{scenario}{variant}").to_ascii_lowercase().replace('-', "_");
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(63).collect()
}

/// A daemon a scenario talks to; a fresh one is killed and its home removed on drop.
pub(crate) struct Daemon {
    pub(crate) addr: String,
    pub(crate) token: String,
    pub(crate) pid: Option<u32>,
    pub(crate) child: Option<Child>,
    pub(crate) home: Option<PathBuf>,
    /// `--observe`'s scraper and dashboard (they stop with the daemon).
    pub(crate) observer: Option<super::observe::Observer>,
    /// `SEMANTICA_STORE_URL` of a fresh daemon on Postgres (a restart gets the same).
    pub(crate) store_url: Option<String>,
    /// `--daemons`: the other daemons on the same database. Clients go round-robin over
    /// this one and them (`client_at`); they stop before `schema` is dropped.
    pub(crate) peers: Vec<Daemon>,
    /// The schema of a fresh daemon on Postgres, dropped after every daemon stopped.
    pub(crate) schema: Option<PgSchema>,
}

impl Daemon {
    pub(crate) fn client(&self) -> BenchResult<Client> {
        // THROTTLED answers are waited out (and counted) by `calls::call`, not the client.
        let config = semantica_client::Config { timeout: CALL_TIMEOUT, throttle_retries_max: 0, ..Default::default() };
        Ok(Client::with_url(&self.addr, Some(&self.token)).config(config))
    }

    /// The client of connection `index`: round-robin over this daemon and its peers.
    pub(crate) fn client_at(&self, index: usize) -> BenchResult<Client> {
        match index % (1 + self.peers.len()) {
            0 => self.client(),
            peer => self.peers[peer - 1].client(),
        }
    }

    /// A CPU meter of this daemon and its peers.
    pub(crate) fn cpu_meter(&self) -> CpuMeter {
        let mut meter = CpuMeter::start(self.pid);
        meter.peers = self.peers.iter().filter_map(|peer| peer.pid).map(|pid| (pid, process_ticks(pid))).collect();
        meter
    }

    /// The daemon's peak resident memory so far (VmHWM), in MiB, when it runs here.
    pub(crate) fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.pid?)
    }

    /// SIGTERM, and wait for the daemon to exit (a fresh one only).
    pub(crate) fn stop(&mut self) -> BenchResult<()> {
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

pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Starts `exe serve` on `home` (and on the Postgres `store_url` if given) and waits for
/// its `daemon.json`.
pub(crate) fn start_daemon(
    exe: &Path,
    home: &Path,
    workers: Option<usize>,
    store_url: Option<&str>,
) -> BenchResult<Daemon> {
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
    command.env_remove("SEMANTICA_STORE_URL");
    if let Some(url) = store_url {
        command.env("SEMANTICA_STORE_URL", url);
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
    let started = Instant::now();
    loop {
        if let Ok(info) = DaemonInfo::read(home) {
            if info.pid == child.id() {
                let token = std::fs::read_to_string(home.join("token")).map_err(|e| e.to_string())?.trim().to_owned();
                return Ok(Daemon {
                    addr: info.rpc_addr,
                    token,
                    pid: Some(info.pid),
                    child: Some(child),
                    home: Some(home.to_owned()),
                    observer: None,
                    store_url: store_url.map(str::to_owned),
                    peers: Vec::new(),
                    schema: None,
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
pub(crate) struct CpuMeter {
    pub(crate) pid: Option<u32>,
    pub(crate) started: Instant,
    pub(crate) threads: BTreeMap<u32, (String, u64)>,
    pub(crate) client_ticks: u64,
    /// `--daemons`: the other daemons' pids and their ticks at the start.
    pub(crate) peers: Vec<(u32, u64)>,
}

/// A process's user + system ticks so far (0 when it cannot be read).
pub(crate) fn process_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat")).map(|(_, ticks)| ticks).unwrap_or(0)
}

/// `/proc` reports CPU time in USER_HZ ticks, 100 per second on Linux.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// The command name and user + system ticks of a `/proc/.../stat` file.
pub(crate) fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

pub(crate) fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return BTreeMap::new() };
    tasks
        .filter_map(|task| {
            let tid: u32 = task.ok()?.file_name().to_str()?.parse().ok()?;
            Some((tid, stat_ticks(&format!("/proc/{pid}/task/{tid}/stat"))?))
        })
        .collect()
}

impl CpuMeter {
    pub(crate) fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            started: Instant::now(),
            threads: pid.map(thread_ticks).unwrap_or_default(),
            client_ticks: stat_ticks("/proc/self/stat").map(|(_, ticks)| ticks).unwrap_or(0),
            peers: Vec::new(),
        }
    }

    /// `daemon_cpu_pct`, `client_cpu_pct` (100 = one core busy) and the daemon's busiest
    /// thread.
    pub(crate) fn figures(&self, figures: &mut Map<String, Value>) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = |ticks: u64| (ticks as f64 / TICKS_PER_SECOND / seconds * 100.0).round();
        if !self.peers.is_empty() {
            let spent: u64 = self.peers.iter().map(|(pid, before)| process_ticks(*pid).saturating_sub(*before)).sum();
            figures.insert("peers_cpu_pct".into(), json!(pct(spent)));
        }
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
