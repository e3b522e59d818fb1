//! The `semantica` command line as a person uses it: human durations and times,
//! shell completions and the manual page. The real binary, and a real daemon where a
//! command needs one.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("SEMANTICA_HOME", home).env_remove("SEMANTICA_TOKEN").output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{:?} failed: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn enqueue_json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json", "enqueue"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout(&cli(home, &all))).unwrap()
}

fn get_json(home: &Path, id: &Value) -> Value {
    serde_json::from_str(&stdout(&cli(home, &["--json", "get", id.as_str().unwrap()]))).unwrap()
}

#[test]
fn enqueue_takes_human_durations_and_times() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(home.path());
    let delayed = enqueue_json(home.path(), &["--job-type", "noop", "--subject", "d", "--delay", "5m", "--ttl", "1h"]);
    assert_eq!(delayed["state"], "SCHEDULED");
    let job = get_json(home.path(), &delayed["job_id"]);
    let delay_ms = job["scheduled_at"].as_u64().unwrap() - job["created_at"].as_u64().unwrap();
    assert_eq!(delay_ms, 300_000, "{job}");

    let at_ms: u64 = 4_102_444_800_000; // 2100-01-01T00:00:00Z
    for at in ["4102444800000", "2100-01-01T00:00:00Z", "2100-01-01T01:00:00+01:00"] {
        let subject = format!("at-{at}");
        let enqueued = enqueue_json(home.path(), &["--job-type", "noop", "--subject", &subject, "--at", at]);
        assert_eq!(get_json(home.path(), &enqueued["job_id"])["scheduled_at"], json!(at_ms), "--at {at}");
    }
    // Local time: the daemon's and the CLI's zone (TZ), here fixed.
    let local = Command::new(BIN)
        .args(["--json", "enqueue", "--job-type", "noop", "--subject", "local", "--at", "2100-01-01T03:00"])
        .env("SEMANTICA_HOME", home.path())
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let enqueued: Value = serde_json::from_str(&stdout(&local)).unwrap();
    assert_eq!(get_json(home.path(), &enqueued["job_id"])["scheduled_at"], json!(at_ms + 3 * 3_600_000));

    // --timeout reaches the daemon: a job that would sleep for 30 s is stopped after 1 s.
    let timed = cli(home.path(), &["enqueue", "--subject", "t", "--timeout", "1s", "--wait", "--", "sleep", "30"]);
    assert_eq!(timed.status.code(), Some(1), "{}", String::from_utf8_lossy(&timed.stderr));
    assert!(String::from_utf8_lossy(&timed.stdout).contains("timeout"), "{}", String::from_utf8_lossy(&timed.stdout));

    let waited = cli(home.path(), &["wait", delayed["job_id"].as_str().unwrap(), "--timeout", "200ms"]);
    assert_eq!(waited.status.code(), Some(3), "a wait that times out exits 3");
}

#[test]
fn bad_durations_and_times_are_clap_errors_before_any_call() {
    let home = tempfile::tempdir().unwrap(); // no daemon: the error must come first
    for (flag, value, says) in [
        ("--delay", "5x", "not a duration"),
        ("--delay", "5", "no unit"),
        ("--timeout", "0s", "more than zero"),
        ("--ttl", "soon", "not a duration"),
        ("--at", "tomorrow", "not a time"),
        ("--deadline", "2026-13-01T00:00", "not a time"),
    ] {
        let output = cli(home.path(), &["enqueue", "--subject", "s", flag, value]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: clap's usage error");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("invalid value '{value}' for '{flag}")), "{stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}

#[test]
fn bash_completions_are_a_valid_script_naming_the_subcommands() {
    let home = tempfile::tempdir().unwrap();
    let script = stdout(&cli(home.path(), &["completions", "bash"]));
    for subcommand in ["serve", "enqueue", "jobs", "cancel", "reload", "completions", "man"] {
        assert!(script.contains(subcommand), "the bash script does not name {subcommand}");
    }
    let path = home.path().join("semantica.bash");
    std::fs::write(&path, &script).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(checked.status.success(), "bash -n: {}", String::from_utf8_lossy(&checked.stderr));
    // Loaded into a shell, it registers a completion for `semantica`.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p semantica", path.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("semantica"));

    for shell in ["zsh", "fish"] {
        let script = stdout(&cli(home.path(), &["completions", shell]));
        assert!(script.contains("enqueue") && script.contains("reload"), "{shell}");
    }
    let unknown = cli(home.path(), &["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn man_prints_a_roff_page_of_every_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let page = stdout(&cli(home.path(), &["man"]));
    assert!(page.lines().any(|line| line.starts_with(".TH semantica")), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    for subcommand in ["enqueue", "reload", "completions"] {
        assert!(page.contains(subcommand), "the page does not name {subcommand}");
    }
    // The pages it points to (semantica-enqueue(1)) are there too.
    let enqueue = stdout(&cli(home.path(), &["man", "enqueue"]));
    assert!(enqueue.lines().any(|line| line.starts_with(".TH semantica-enqueue")), "{enqueue}");
    assert!(enqueue.contains("delay") && enqueue.contains("DURATION"), "{enqueue}");
    assert_eq!(cli(home.path(), &["man", "nope"]).status.code(), Some(2));
}

/// `semantica status --watch` prints the table again every second until interrupted,
/// and a Ctrl-C (SIGINT) ends it cleanly.
#[test]
fn status_watch_redraws_every_second_until_interrupted() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(home.path());
    let child = Command::new(BIN)
        .args(["status", "--watch"])
        .env("SEMANTICA_HOME", home.path())
        .env_remove("SEMANTICA_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = stdout(&output);
    let tables = text.lines().filter(|line| line.starts_with("queue ")).count();
    assert!((2..=4).contains(&tables), "{tables} tables in 2.5 s:\n{text}");
    assert!(!text.contains('\x1b'), "no screen control codes when stdout is not a terminal:\n{text}");
}

/// The daemon's human log written to a file (not a terminal) carries no colour codes.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let home = tempfile::tempdir().unwrap();
    let log_path = home.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = Daemon::start_logging_to(home.path(), &[], std::process::Stdio::from(log));
    let enqueued = enqueue_json(home.path(), &["--job-type", "noop", "--subject", "s"]);
    let _ = cli(home.path(), &["wait", enqueued["job_id"].as_str().unwrap()]);
    daemon.stop();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("job ended"), "the log was written: {text}");
    assert!(!text.contains("\x1b["), "colour codes in a log file:\n{text}");
}
