//! Subprocess jobs: own process group, allowlisted environment, output to the job's log,
//! result and artifacts collected on exit, the whole group stopped on cancel or timeout.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use semantica_core::{limits, Artifact, ErrorKind, Job, Outcome};
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::ExecConfig;

/// Most artifacts listed for one attempt, and deepest directory walked.
const ARTIFACTS_MAX: usize = 10_000;
const ARTIFACT_DEPTH_MAX: usize = 32;
/// How long the end of an attempt waits for the rest of its output.
const OUTPUT_DRAIN_MAX: Duration = Duration::from_secs(2);
/// Read size of the output copier; its only buffer.
const OUTPUT_CHUNK_BYTES: usize = 64 * 1024;

fn failed(kind: ErrorKind, message: impl Into<String>) -> Outcome {
    Outcome::Failed { kind, exit_code: None, message: message.into() }
}

/// Opens the job's log for appending (creating the directory), so that every attempt's
/// output and the daemon's notes about it land in one file in the order written.
pub(crate) fn open_log(config: &ExecConfig, job: &Job) -> std::io::Result<File> {
    fs::create_dir_all(&config.logs_dir)?;
    OpenOptions::new().create(true).append(true).open(config.log_path(job.id))
}

/// Why a spawn failed, in words that name the culprit. The child's `chdir` and `exec`
/// both fail with ENOENT, and the OS says only "No such file or directory": a working
/// directory that is missing or no directory is looked at after the fact and named, so
/// that the program is not blamed for it.
fn spawn_failure(command: &str, cwd: Option<&str>, error: &std::io::Error) -> String {
    if let Some(cwd) = cwd {
        match fs::metadata(cwd) {
            Err(cwd_error) if cwd_error.kind() == std::io::ErrorKind::NotFound => {
                return format!("cannot start {command:?}: its working directory {cwd:?} does not exist");
            }
            Err(cwd_error) => return format!("cannot start {command:?}: its working directory {cwd:?}: {cwd_error}"),
            Ok(metadata) if !metadata.is_dir() => {
                return format!("cannot start {command:?}: its working directory {cwd:?} is not a directory");
            }
            Ok(_) => {}
        }
    }
    format!("cannot start {command:?}: {error}")
}

/// Where the child's `execvp` would find `command`: through the child's own `PATH`
/// (glibc's default `/bin:/usr/bin` without one; relative entries from its working
/// directory), the first regular file with an execute bit. A name with a slash, or one
/// found nowhere, is returned as given, and the spawn reports what the OS says.
///
/// Why look it up here: handed a path, the standard library starts the child with
/// `posix_spawn` (`vfork`-like), but handed a bare name with a changed environment it
/// must `fork` to search the child's `PATH`, and a fork copies the page tables of the
/// whole daemon: most of the daemon's CPU per `true` job before this.
fn find_program(command: &str, child_path: Option<&OsStr>, cwd: Option<&Path>) -> PathBuf {
    if command.contains('/') || command.is_empty() {
        return PathBuf::from(command);
    }
    let search = child_path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    for dir in std::env::split_paths(search) {
        let dir = match (dir.as_os_str().is_empty(), cwd) {
            (true, Some(cwd)) => cwd.to_path_buf(),
            (true, None) => PathBuf::from("."),
            (false, Some(cwd)) if dir.is_relative() => cwd.join(dir),
            (false, _) => dir,
        };
        let candidate = dir.join(command);
        if candidate.is_relative() {
            // Relative to a working directory the child has not entered yet: leave the
            // search to the child.
            return PathBuf::from(command);
        }
        let executable = fs::metadata(&candidate)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0);
        if executable {
            return candidate;
        }
    }
    PathBuf::from(command)
}

/// Runs one attempt of `job` to its end. `stop` turning true asks for the group to be
/// stopped: SIGTERM, then SIGKILL after the grace period.
pub async fn run(
    job: &Job,
    config: &ExecConfig,
    mut stop: watch::Receiver<bool>,
    on_started: impl FnOnce(Option<u32>, Option<u64>),
) -> Outcome {
    let exec = job.exec.as_ref().expect("a subprocess job has exec");
    let mut log = match open_log(config, job) {
        Ok(log) => log,
        Err(error) => return failed(ErrorKind::SpawnFailed, format!("cannot open the job's log: {error}")),
    };
    let run_dir = config.run_dir(job.id, job.attempts);
    let result_path = run_dir.join("result.json");
    let artifact_dir = run_dir.join("artifacts");
    if let Err(error) = fs::create_dir_all(&artifact_dir) {
        return failed(ErrorKind::SpawnFailed, format!("cannot create {}: {error}", artifact_dir.display()));
    }
    // Output goes through a pipe the daemon reads, not straight into the file, so that a
    // job printing without end cannot fill the disk: see `copy_capped`.
    let (output, stdout, stderr) = match output_pipe() {
        Ok(pipe) => pipe,
        Err(error) => return failed(ErrorKind::SpawnFailed, format!("cannot create the output pipe: {error}")),
    };
    let mut copier = match log.try_clone() {
        Ok(copy_log) => tokio::spawn(copy_capped(output, copy_log, config.log_max_bytes)),
        Err(error) => return failed(ErrorKind::SpawnFailed, format!("cannot share the log: {error}")),
    };
    let child_path = match exec.env.get("PATH") {
        Some(path) => Some(OsString::from(path)),
        None if config.env_allowlist.iter().any(|name| name == "PATH") => std::env::var_os("PATH"),
        None => None,
    };
    let program = find_program(&exec.command, child_path.as_deref(), exec.cwd.as_deref().map(Path::new));
    let mut command = tokio::process::Command::new(program);
    command.args(&exec.args).env_clear();
    for name in &config.env_allowlist {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .envs(&exec.env)
        .env("SEMANTICA_JOB_ID", job.id.to_string())
        // The attempt's span, so that a traced tool continues the job's trace.
        .env("TRACEPARENT", crate::trace::traceparent(job))
        .env("SEMANTICA_RESULT_PATH", &result_path)
        .env("SEMANTICA_ARTIFACT_DIR", &artifact_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some(cwd) = &exec.cwd {
        command.current_dir(cwd);
    }
    let spawned = command.spawn();
    // The command holds the pipe's write ends: drop them, or the copier never sees the end.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            copier.abort();
            let message = spawn_failure(&exec.command, exec.cwd.as_deref(), &error);
            let _ = writeln!(log, "[semantica] {message}");
            return failed(ErrorKind::SpawnFailed, message);
        }
    };
    let pid = child.id().expect("a child that was just spawned has a pid");
    on_started(Some(pid), process_start_time(pid));
    let status = tokio::select! {
        status = child.wait() => status,
        _ = stopped(&mut stop) => {
            let _ = writeln!(log, "[semantica] stopping process group {pid}");
            signal_group(pid, Signal::SIGTERM);
            match tokio::time::timeout(config.kill_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    let _ = writeln!(log, "[semantica] process group {pid} outlived the grace period: SIGKILL");
                    signal_group(pid, Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    // Whatever the leader left running in its group goes with it: a finished job leaves
    // no processes behind.
    signal_group(pid, Signal::SIGKILL);
    // The output left in the pipe lands in the log before the attempt's end is reported.
    // A process that left the group (setsid) may hold the pipe open: wait a little only.
    if tokio::time::timeout(OUTPUT_DRAIN_MAX, &mut copier).await.is_err() {
        copier.abort();
        let _ = writeln!(log, "[semantica] output still open after the process ended: no longer read");
    }
    let status = match status {
        Ok(status) => status,
        Err(error) => return failed(ErrorKind::SpawnFailed, format!("lost the child: {error}")),
    };
    if let Some(signal) = status.signal() {
        let _ = writeln!(log, "[semantica] killed by signal {signal}");
        return Outcome::Failed {
            kind: ErrorKind::Signal,
            exit_code: None,
            message: format!("killed by signal {signal}"),
        };
    }
    let code = status.code().expect("an exit without a signal has a code");
    if code != 0 {
        return Outcome::Failed {
            kind: ErrorKind::ExitCode,
            exit_code: Some(code),
            message: format!("exited with code {code}"),
        };
    }
    let result_summary_json = read_result(&result_path, &mut log);
    let artifacts = list_artifacts(&artifact_dir);
    Outcome::Succeeded { exit_code: Some(0), result_summary_json, artifacts }
}

/// One pipe for stdout and stderr (so that their lines interleave as written): the read
/// end for the daemon, two write ends for the child. Both ends are close-on-exec, so no
/// other child inherits them.
fn output_pipe() -> std::io::Result<(pipe::Receiver, Stdio, Stdio)> {
    let (sender, receiver) = pipe::pipe()?;
    // The child gets an ordinary blocking pipe; only the daemon's end is non-blocking.
    let stdout = sender.into_blocking_fd()?;
    let stderr = stdout.try_clone()?;
    Ok((receiver, Stdio::from(stdout), Stdio::from(stderr)))
}

/// Copies a child's output into its log until the pipe closes. The log grows to at most
/// `max_bytes` (counting what earlier attempts wrote); past that, output is read and
/// dropped, so the child never blocks on a full pipe, and one note says so. Memory: one
/// chunk, whatever the child prints.
async fn copy_capped(mut output: pipe::Receiver, mut log: File, max_bytes: u64) {
    let mut written = log.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let mut dropped = 0u64;
    let mut chunk = vec![0u8; OUTPUT_CHUNK_BYTES];
    loop {
        let read = match output.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let room = max_bytes.saturating_sub(written).min(read as u64) as usize;
        if room > 0 {
            if log.write_all(&chunk[..room]).is_err() {
                // The log cannot take more (a full disk): keep reading, so that the child
                // neither blocks on a full pipe nor dies of SIGPIPE, and drop the rest.
                written = max_bytes;
            } else {
                written += room as u64;
            }
        }
        if room < read {
            if dropped == 0 {
                let _ = writeln!(
                    log,
                    "\n[semantica] log reached {max_bytes} bytes (log_max_bytes): further output dropped"
                );
            }
            dropped += (read - room) as u64;
        }
    }
    if dropped > 0 {
        let _ = writeln!(log, "[semantica] {dropped} bytes of output dropped");
    }
}

/// Resolves once a stop is asked for; never, if the asker is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn signal_group(pid: u32, signal: Signal) {
    // ESRCH (the group is gone) is the normal case after an exit.
    let _ = killpg(Pid::from_raw(pid as i32), signal);
}

/// The JSON a process left at `$SEMANTICA_RESULT_PATH`, if it is valid and ≤ 64 KiB.
fn read_result(path: &Path, log: &mut File) -> Option<String> {
    let metadata = fs::metadata(path).ok()?;
    if metadata.len() > limits::RESULT_SUMMARY_BYTES_MAX as u64 {
        let _ = writeln!(log, "[semantica] result file over {} bytes: not stored", limits::RESULT_SUMMARY_BYTES_MAX);
        return None;
    }
    let text = fs::read_to_string(path).ok()?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => Some(value.to_string()),
        Err(error) => {
            let _ = writeln!(log, "[semantica] result file is not JSON ({error}): not stored");
            None
        }
    }
}

/// Regular files under `dir`, as paths relative to it, sorted.
fn list_artifacts(dir: &Path) -> Vec<Artifact> {
    let mut artifacts = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0usize)];
    while let Some((current, depth)) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            // symlink_metadata: never follow a link out of the artifact directory.
            let Ok(metadata) = entry.path().symlink_metadata() else { continue };
            if metadata.is_dir() && depth < ARTIFACT_DEPTH_MAX {
                pending.push((entry.path(), depth + 1));
            } else if metadata.is_file() && artifacts.len() < ARTIFACTS_MAX {
                let name = entry.path().strip_prefix(dir).expect("walked under dir").to_string_lossy().into_owned();
                artifacts.push(Artifact { name, bytes: metadata.len() });
            }
        }
    }
    artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    artifacts
}

/// The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22): with
/// the pid it names one process for the life of the machine.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Kills a process group left by an earlier daemon, only if `pid` still names the same
/// process (same start time): a recycled pid belongs to someone else.
pub fn kill_leftover(pid: u32, started_at: u64) -> bool {
    if process_start_time(pid) != Some(started_at) {
        return false;
    }
    signal_group(pid, Signal::SIGKILL);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_program_is_found_on_the_childs_path_as_execvp_would() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        executable(first.path(), "tool", 0o644); // not executable: skipped
        let found = executable(second.path(), "tool", 0o755);
        fs::create_dir(first.path().join("dir")).unwrap(); // a directory: skipped
        let path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_program("tool", Some(&path), None), found);
        assert_eq!(find_program("dir", Some(&path), None), PathBuf::from("dir"), "not found: left to the spawn");
        assert_eq!(find_program("./tool", Some(&path), None), PathBuf::from("./tool"), "a path is taken as given");
        assert_eq!(find_program("sh", None, None), PathBuf::from("/bin/sh"), "glibc's default search path");
    }

    #[test]
    fn a_relative_path_entry_is_left_to_the_child() {
        let cwd = tempfile::tempdir().unwrap();
        fs::create_dir(cwd.path().join("bin")).unwrap();
        let found = executable(&cwd.path().join("bin"), "tool", 0o755);
        assert_eq!(find_program("tool", Some(OsStr::new("bin")), Some(cwd.path())), found);
        assert_eq!(find_program("tool", Some(OsStr::new("bin")), None), PathBuf::from("tool"));
        assert_eq!(find_program("tool", Some(OsStr::new("bin")), Some(Path::new("rel"))), PathBuf::from("tool"));
    }
}
