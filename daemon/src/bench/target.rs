//! Where the daemon comes from: a fresh one per scenario or one already running; its
//! peak RSS and CPU time.

#[allow(unused_imports)]
use super::*;

// ---- where the daemon comes from ----------------------------------------------------

pub(crate) enum Target {
    /// A fresh daemon per scenario, started from `exe`.
    Fresh { exe: PathBuf, base_dir: PathBuf, workers: Option<usize> },
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
        Ok(Target::Fresh { exe, base_dir, workers: args.workers })
    }

    pub(crate) fn describe(&self) -> String {
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

/// A daemon a scenario talks to; a fresh one is killed and its home removed on drop.
pub(crate) struct Daemon {
    pub(crate) addr: String,
    pub(crate) token: String,
    pub(crate) pid: Option<u32>,
    pub(crate) child: Option<Child>,
    pub(crate) home: Option<PathBuf>,
    /// `--observe`'s scraper and dashboard (they stop with the daemon).
    pub(crate) observer: Option<super::observe::Observer>,
}

impl Daemon {
    pub(crate) fn client(&self) -> BenchResult<Client> {
        // THROTTLED answers are waited out (and counted) by `calls::call`, not the client.
        let config = semantica_client::Config { timeout: CALL_TIMEOUT, throttle_retries_max: 0, ..Default::default() };
        Ok(Client::with_url(&self.addr, Some(&self.token)).config(config))
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

/// Starts `exe serve` on `home` and waits for its `daemon.json`.
pub(crate) fn start_daemon(exe: &Path, home: &Path, workers: Option<usize>) -> BenchResult<Daemon> {
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
        }
    }

    /// `daemon_cpu_pct`, `client_cpu_pct` (100 = one core busy) and the daemon's busiest
    /// thread.
    pub(crate) fn figures(&self, figures: &mut Map<String, Value>) {
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
