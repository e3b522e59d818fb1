//! The executors against real processes and real files.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use semantica_adapters::exec::{subprocess, ExecConfig, Handlers, TokioExecutor};
use semantica_core::{Artifact, ErrorKind, ExecSpec, Executor, Job, JobId, JobState, KillOrder, Outcome, Report};
use tokio::sync::mpsc;

fn job(id: u128, job_type: &str, payload: serde_json::Value, exec: Option<ExecSpec>) -> Job {
    Job {
        job_type: job_type.into(),
        state: JobState::Running,
        payload_json: payload.to_string(),
        exec,
        attempts: 1,
        started_at_ms: Some(0),
        ..Job::blank(JobId::from_u128(id))
    }
}

fn shell(script: &str) -> Option<ExecSpec> {
    Some(ExecSpec { command: "sh".into(), args: vec!["-c".into(), script.into()], ..ExecSpec::default() })
}

struct Rig {
    _dir: tempfile::TempDir,
    config: ExecConfig,
    executor: TokioExecutor,
    reports: mpsc::UnboundedReceiver<Report>,
}

fn rig(grace: Duration) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecConfig::new(dir.path().join("logs"), dir.path().join("runs"));
    config.kill_grace = grace;
    let (sender, reports) = mpsc::unbounded_channel();
    let executor = TokioExecutor::new(tokio::runtime::Handle::current(), config.clone(), Handlers::builtin(), sender);
    Rig { _dir: dir, config, executor, reports }
}

impl Rig {
    /// The attempt's reports: `Started` (subprocesses only: it carries the pid), then
    /// `Finished`'s outcome.
    async fn outcome(&mut self) -> (Option<Report>, Outcome) {
        let mut started = None;
        loop {
            let report = tokio::time::timeout(Duration::from_secs(20), self.reports.recv()).await.unwrap().unwrap();
            match report {
                Report::Started { pid, .. } => {
                    assert!(started.is_none(), "two Started reports");
                    assert!(pid.is_some(), "a Started report without a pid: {report:?}");
                    started = Some(report);
                }
                Report::Finished { outcome, .. } => return (started, outcome),
            }
        }
    }

    fn log(&self, id: u128) -> String {
        std::fs::read_to_string(self.config.log_path(JobId::from_u128(id))).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subprocess_leaves_its_result_artifacts_and_output() {
    let mut rig = rig(Duration::from_secs(5));
    std::env::set_var("SEMANTICA_TEST_SECRET", "hunter2");
    let script = r#"echo out; echo err >&2; echo "secret=${SEMANTICA_TEST_SECRET:-unset} id=$SEMANTICA_JOB_ID mine=$MINE";
        printf '{"files": 2}' > "$SEMANTICA_RESULT_PATH";
        mkdir -p "$SEMANTICA_ARTIFACT_DIR/sub"; printf abc > "$SEMANTICA_ARTIFACT_DIR/sub/x.txt"; printf 12345 > "$SEMANTICA_ARTIFACT_DIR/a.bin""#;
    let mut exec = shell(script).unwrap();
    exec.env.insert("MINE".into(), "yes".into());
    let job = job(1, "x", serde_json::Value::Null, Some(exec));
    rig.executor.spawn(&job);
    let (started, outcome) = rig.outcome().await;
    let started = started.expect("a subprocess reports its pid");
    let Report::Started { pid, pid_started_at, .. } = started else { unreachable!() };
    assert!(pid.is_some() && pid_started_at.is_some());
    assert_eq!(
        outcome,
        Outcome::Succeeded {
            exit_code: Some(0),
            result_summary_json: Some(r#"{"files":2}"#.into()),
            artifacts: vec![
                Artifact { name: "a.bin".into(), bytes: 5 },
                Artifact { name: "sub/x.txt".into(), bytes: 3 }
            ],
        }
    );
    let log = rig.log(1);
    assert!(log.contains("out\n") && log.contains("err\n"), "{log}");
    assert!(log.contains(&format!("secret=unset id={} mine=yes", job.id)), "the daemon's environment leaked: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_signals_and_spawn_failures_are_failed_attempts() {
    let mut rig = rig(Duration::from_secs(5));
    rig.executor.spawn(&job(2, "x", serde_json::Value::Null, shell("exit 3")));
    assert!(matches!(rig.outcome().await.1, Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(3), .. }));
    rig.executor.spawn(&job(3, "x", serde_json::Value::Null, shell("kill -9 $$")));
    assert!(matches!(rig.outcome().await.1, Outcome::Failed { kind: ErrorKind::Signal, .. }));
    let missing = ExecSpec { command: "/nonexistent/semantica-test".into(), ..ExecSpec::default() };
    rig.executor.spawn(&job(4, "x", serde_json::Value::Null, Some(missing)));
    let finished = tokio::time::timeout(Duration::from_secs(20), rig.reports.recv()).await.unwrap().unwrap();
    assert!(matches!(finished, Report::Finished { outcome: Outcome::Failed { kind: ErrorKind::SpawnFailed, .. }, .. }));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_working_directory_is_named_not_the_program() {
    let mut rig = rig(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = dir.path().join("no-such-dir");
    let exec = ExecSpec { command: "true".into(), cwd: Some(missing_dir.display().to_string()), ..ExecSpec::default() };
    rig.executor.spawn(&job(5, "x", serde_json::Value::Null, Some(exec)));
    let (started, outcome) = rig.outcome().await;
    assert!(started.is_none(), "nothing started: {started:?}");
    let Outcome::Failed { kind: ErrorKind::SpawnFailed, message, .. } = outcome else {
        panic!("want a spawn failure, got {outcome:?}")
    };
    assert!(message.contains(&missing_dir.display().to_string()), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(rig.log(5).contains("does not exist"), "{}", rig.log(5));
    // A file where the directory should be is named too.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let exec = ExecSpec { command: "true".into(), cwd: Some(file.display().to_string()), ..ExecSpec::default() };
    rig.executor.spawn(&job(6, "x", serde_json::Value::Null, Some(exec)));
    let Outcome::Failed { message, .. } = rig.outcome().await.1 else { panic!("want a failure") };
    assert!(message.contains("is not a directory") && message.contains("a-file"), "{message}");
    // A missing program is still blamed on the program.
    let exec = ExecSpec { command: "semantica-no-such-program".into(), ..ExecSpec::default() };
    rig.executor.spawn(&job(7, "x", serde_json::Value::Null, Some(exec)));
    let Outcome::Failed { message, .. } = rig.outcome().await.1 else { panic!("want a failure") };
    assert!(message.contains("cannot start \"semantica-no-such-program\""), "{message}");
    assert!(!message.contains("working directory"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconfigured_allowlist_applies_to_the_next_attempt() {
    let mut rig = rig(Duration::from_secs(5));
    std::env::set_var("SEMANTICA_TEST_RELOADED", "visible");
    let script = r#"echo "value=${SEMANTICA_TEST_RELOADED:-unset}""#;
    rig.executor.spawn(&job(8, "x", serde_json::Value::Null, shell(script)));
    rig.outcome().await;
    assert!(rig.log(8).contains("value=unset"), "{}", rig.log(8));
    let mut config = rig.config.clone();
    config.env_allowlist.push("SEMANTICA_TEST_RELOADED".into());
    rig.executor.reconfigure(config);
    assert!(rig.executor.config().env_allowlist.iter().any(|name| name == "SEMANTICA_TEST_RELOADED"));
    rig.executor.spawn(&job(9, "x", serde_json::Value::Null, shell(script)));
    rig.outcome().await;
    assert!(rig.log(9).contains("value=visible"), "{}", rig.log(9));
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); count it dead by its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

async fn gone(pid: i32) -> bool {
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_stops_the_whole_group_even_one_that_ignores_sigterm() {
    let mut rig = rig(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let script = format!("trap '' TERM; sleep 30 & echo $! > {}; wait", pidfile.display());
    let job = job(5, "x", serde_json::Value::Null, shell(&script));
    rig.executor.spawn(&job);
    let Report::Started { pid, pid_started_at, .. } = rig.reports.recv().await.unwrap() else { panic!() };
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    rig.executor.kill(&KillOrder { job_id: job.id, attempt: 1, pid, pid_started_at });
    let finished = tokio::time::timeout(Duration::from_secs(20), rig.reports.recv()).await.unwrap().unwrap();
    assert!(
        matches!(finished, Report::Finished { outcome: Outcome::Failed { kind: ErrorKind::Signal, .. }, .. }),
        "{finished:?}"
    );
    assert!(gone(grandchild).await, "the job's child {grandchild} survived");
    assert!(rig.log(5).contains("SIGKILL"));
    assert_eq!(rig.executor.running_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_leaves_no_process_behind() {
    let mut rig = rig(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let script = format!("sleep 30 & echo $! > {}; exit 0", pidfile.display());
    rig.executor.spawn(&job(6, "x", serde_json::Value::Null, shell(&script)));
    assert!(matches!(rig.outcome().await.1, Outcome::Succeeded { .. }));
    let background: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(gone(background).await, "background process {background} outlived its job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leftover_is_killed_only_if_its_start_time_matches() {
    let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
    let pid = child.id();
    let started_at = subprocess::process_start_time(pid).expect("a live process has a start time");
    assert!(!subprocess::kill_leftover(pid, started_at + 1), "a different start time is someone else");
    assert!(alive(pid as i32));
    assert!(subprocess::kill_leftover(pid, started_at));
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_handlers_do_what_the_contract_says() {
    let mut rig = rig(Duration::from_secs(5));
    rig.executor.spawn(&job(10, "noop", serde_json::Value::Null, None));
    let (started, outcome) = rig.outcome().await;
    assert!(started.is_none(), "an in-process job has no pid to report: {started:?}");
    assert_eq!(outcome, Outcome::Succeeded { exit_code: None, result_summary_json: None, artifacts: vec![] });

    let payload = serde_json::json!({"hello": ["world", 1]});
    rig.executor.spawn(&job(11, "echo", payload.clone(), None));
    let Outcome::Succeeded { result_summary_json: Some(result), .. } = rig.outcome().await.1 else { panic!() };
    assert_eq!(serde_json::from_str::<serde_json::Value>(&result).unwrap(), payload);
    assert!(rig.log(11).contains("hello"));

    let mut twice = job(12, "fail", serde_json::json!({"times": 1}), None);
    rig.executor.spawn(&twice);
    assert!(matches!(rig.outcome().await.1, Outcome::Failed { kind: ErrorKind::HandlerError, .. }));
    twice.attempts = 2;
    rig.executor.spawn(&twice);
    assert!(matches!(rig.outcome().await.1, Outcome::Succeeded { .. }));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    std::fs::write(&path, "abc\ndef").unwrap();
    rig.executor.spawn(&job(13, "index_file", serde_json::json!({"path": path}), None));
    let Outcome::Succeeded { result_summary_json: Some(result), .. } = rig.outcome().await.1 else { panic!() };
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    // sha256 of "abc\ndef", computed elsewhere (Python's hashlib)
    let expected = "d53d6b91af7caf8fe3d8021f116270137c0079d579a1e16965da80c2ed138ffb";
    assert_eq!(result, serde_json::json!({"bytes": 7, "lines": 2, "sha256": expected}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_sleep_ends_early_and_a_panic_fails_only_its_job() {
    let mut rig = rig(Duration::from_secs(5));
    let sleeper = job(20, "sleep", serde_json::json!({"ms": 60_000}), None);
    rig.executor.spawn(&sleeper);
    rig.executor.kill(&KillOrder { job_id: sleeper.id, attempt: 1, pid: None, pid_started_at: None });
    let finished =
        tokio::time::timeout(Duration::from_secs(5), rig.reports.recv()).await.expect("cancel is prompt").unwrap();
    assert!(matches!(
        finished,
        Report::Finished { outcome: Outcome::Failed { kind: ErrorKind::HandlerError, .. }, .. }
    ));

    let dir = tempfile::tempdir().unwrap();
    let (sender, mut reports) = mpsc::unbounded_channel();
    let mut handlers = Handlers::builtin();
    handlers.register(
        "boom",
        |_: &mut semantica_adapters::exec::HandlerContext| -> Result<Option<serde_json::Value>, String> {
            panic!("boom")
        },
    );
    let mut executor = TokioExecutor::new(
        tokio::runtime::Handle::current(),
        ExecConfig::new(dir.path(), dir.path()),
        handlers,
        sender,
    );
    executor.spawn(&job(21, "boom", serde_json::Value::Null, None));
    match reports.recv().await.unwrap() {
        Report::Finished { outcome: Outcome::Failed { kind: ErrorKind::HandlerError, message, .. }, .. } => {
            assert!(message.contains("panicked: boom"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    executor.spawn(&job(22, "noop", serde_json::Value::Null, None));
    assert!(matches!(reports.recv().await.unwrap(), Report::Finished { outcome: Outcome::Succeeded { .. }, .. }));
}
