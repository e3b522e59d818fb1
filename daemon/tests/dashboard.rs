//! The web dashboard in a real browser: Debian's `chromium`, headless, driven over
//! WebDriver by `chromedriver` (started here on a free port). Signs in through
//! `semantica ui --no-open`, watches a job appear live, follows a log as it grows,
//! cancels a running job from its page, and checks the refusals (a session-less `/ui/`
//! redirects; another Origin or Host gets 403). A screenshot of every page goes to
//! `target/ui-screenshots/`.
//!
//! The browser is required, never skipped: without it this test fails and says what to
//! install (`.ci/run` installs both).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what the test waits for.
const SHOW_WITHIN: Duration = Duration::from_secs(20);

/// `chromedriver` on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the dashboard's tests need Debian's chromium and chromedriver \
                 (`apt-get install chromium chromium-driver`; .ci/run installs them)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Browser {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1360,900", "--hide-scrollbars", "--force-device-scale-factor=1",
        ]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the element at `css` exists and its text passes `check`; returns the text.
async fn shows(browser: &Browser, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    let mut last = String::from("(no such element)");
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if check(&text) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            started.elapsed() < SHOW_WITHIN,
            "{what}: `{css}` did not show it within {SHOW_WITHIN:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn path_now(browser: &Browser) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

/// Runs `semantica ui --no-open` and returns the URL it prints.
fn sign_in_url(home: &Path) -> String {
    let output = Command::new(BIN).args(["ui", "--no-open"]).env("SEMANTICA_HOME", home).output().unwrap();
    assert!(output.status.success(), "semantica ui: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().next().unwrap_or_default().trim().to_owned()
}

fn shell(queue: &str, subject: &str, script: &str) -> Value {
    json!({"job_type": "shell", "queue": queue, "subject_key": subject, "exec": {"command": "sh", "args": ["-c", script]}})
}

/// A little of everything, so that the pages have something to show.
async fn workload(client: &Client) {
    let mut jobs = Vec::new();
    for i in 0..12 {
        jobs.push(
            json!({"job_type": "noop", "queue": "default", "subject_key": format!("repo/file-{i}.rs"), "tag": "index"}),
        );
    }
    for i in 0..3 {
        jobs.push(json!({"job_type": "fail", "queue": "emails", "subject_key": format!("user/{i}/welcome")}));
    }
    for i in 0..4 {
        jobs.push(json!({"job_type": "echo", "queue": "reports", "subject_key": format!("report/{i}"), "payload": {"week": i}}));
    }
    jobs.push(json!({"job_type": "noop", "queue": "reports", "subject_key": "report/monthly", "schedule": {"delay_ms": 3_600_000}}));
    client.call("dev.enqueue_batch.v1", params(json!({"jobs": jobs}))).await.unwrap();
    client.call("dev.enqueue.v1", params(shell("builds", "build/warmup", "echo warming up; sleep 4"))).await.unwrap();
    client.call("admin.queue.pause.v1", params(json!({"queue": "imports"}))).await.unwrap();
    for i in 0..3 {
        let job = json!({"job_type": "noop", "queue": "imports", "subject_key": format!("import/{i}")});
        client.call("dev.enqueue.v1", params(job)).await.unwrap();
    }
    let nightly = json!({"name": "nightly-reindex", "cron": "0 3 * * *", "timezone": "Europe/Paris",
        "job": {"job_type": "noop", "queue": "default", "subject_key": "reindex/all"}});
    client.call("dev.recurring.set.v1", params(nightly)).await.unwrap();
    let hourly = json!({"name": "hourly-digest", "cron": "15 * * * *",
        "job": {"job_type": "echo", "queue": "emails", "subject_key": "digest"}});
    client.call("dev.recurring.set.v1", params(hourly)).await.unwrap();
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let driver = Driver::start();
    let base = format!("http://{}", daemon.rpc_addr);
    runtime().block_on(async {
        let client = daemon.client();
        workload(&client).await;
        let browser = browser(&driver).await;

        // Without a session, /ui/ redirects to the page that says to run `semantica ui`.
        browser.goto(&format!("{base}/ui/")).await.unwrap();
        assert_eq!(path_now(&browser).await, "/ui/signin");
        shows(&browser, "#signin", "the sign-in page", |text| text.contains("semantica ui")).await;
        screenshot(&browser, "signin").await;

        // Sign in through the CLI's one-time link: the cookie is set and /ui/ opens.
        let url = sign_in_url(home.path());
        assert!(url.starts_with(&format!("{base}/ui/login?code=")), "{url}");
        browser.goto(&url).await.unwrap();
        assert_eq!(path_now(&browser).await, "/ui/");
        let cookie = browser.get_named_cookie("semantica_ui").await.expect("the session cookie is set");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        assert_eq!(cookie.path(), Some("/"));
        // The link works once.
        let reuse = std::net::TcpStream::connect(&daemon.rpc_addr).unwrap();
        let path = url.trim_start_matches(&base);
        let (status, _) =
            raw_http(reuse, &format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", daemon.rpc_addr));
        assert_eq!(status, 400, "a used code is refused");

        // Overview: every queue, the paused one marked, workers and the chart.
        shows(&browser, "#queues", "the overview's queues", |text| {
            text.contains("imports") && text.contains("PAUSED") && text.contains("emails")
        })
        .await;
        shows(&browser, "#workers", "workers busy", |text| text.contains("/ 2")).await;
        browser.find(Locator::Css("#chart svg")).await.expect("the throughput chart");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        screenshot(&browser, "overview").await;

        // Resume the paused queue from the page.
        browser.find(Locator::Css("tr[data-queue='imports'] button[data-action='resume']")).await.unwrap().click().await.unwrap();
        shows(&browser, "tr[data-queue='imports']", "the resumed queue", |text| text.contains("ACTIVE")).await;

        // Jobs: a job enqueued over JSON-RPC appears without a reload.
        browser.goto(&format!("{base}/ui/#/jobs")).await.unwrap();
        shows(&browser, "#jobs-body", "the job list", |text| text.contains("repo/file-")).await;
        let script = "for i in 1 2 3 4 5; do echo line $i; sleep 1; done";
        let lines = client.call("dev.enqueue.v1", params(shell("builds", "build/lines", script))).await.unwrap();
        let lines_id = lines["job_id"].as_str().unwrap().to_owned();
        let row = format!("tr[data-job-id='{lines_id}']");
        shows(&browser, &row, "the new job, live", |text| text.contains("build/lines")).await;
        screenshot(&browser, "jobs").await;

        // Its page: the log grows while we watch.
        browser.find(Locator::Css(&format!("{row} a"))).await.unwrap().click().await.unwrap();
        let first = shows(&browser, "#log", "the first log line", |text| text.contains("line 1")).await;
        assert!(!first.contains("line 5"), "the log was seen before it was complete: {first:?}");
        let all = shows(&browser, "#log", "the whole log", |text| text.contains("line 5")).await;
        assert_eq!(all.lines().filter(|line| line.starts_with("line ")).count(), 5, "{all:?}");
        shows(&browser, "#job-state", "the job's end", |text| text.contains("DONE")).await;
        shows(&browser, "#log-state", "the log's end", |text| text.contains("complete")).await;
        screenshot(&browser, "job").await;

        // Cancel a running job from its page.
        let sleeper = client.call("dev.enqueue.v1", params(shell("builds", "build/slow", "echo started; sleep 60"))).await.unwrap();
        let sleeper_id = sleeper["job_id"].as_str().unwrap().to_owned();
        browser.goto(&format!("{base}/ui/#/jobs/{sleeper_id}")).await.unwrap();
        shows(&browser, "#job-state", "the running job", |text| text.contains("RUNNING")).await;
        browser.find(Locator::Css("#cancel-btn")).await.unwrap().click().await.unwrap();
        shows(&browser, "#job-state", "the cancelled job", |text| text.contains("CANCELLED")).await;
        let job = client.call("dev.get.v1", params(json!({"job_id": sleeper_id}))).await.unwrap();
        assert_eq!(job["state"], "CANCELLED");

        // Retry all that match: the count first, then the retry.
        browser.goto(&format!("{base}/ui/#/jobs?queue=emails")).await.unwrap();
        shows(&browser, "#jobs-body", "the failed emails", |text| text.matches("FAILED").count() == 3).await;
        browser.find(Locator::Css("#retry-all")).await.unwrap().click().await.unwrap();
        shows(&browser, "#retry-all-count", "the count before retrying", |text| text.starts_with("3 ended jobs")).await;
        browser.find(Locator::Css("#retry-all-confirm")).await.unwrap().click().await.unwrap();
        shows(&browser, "#jobs-body", "the retried emails", |text| text.matches("FAILED").count() == 6).await;

        // Live updates pause: a job enqueued meanwhile shows only after resuming.
        browser.goto(&format!("{base}/ui/#/jobs")).await.unwrap();
        shows(&browser, "#jobs-body", "the job list", |text| text.contains("build/slow")).await;
        browser.find(Locator::Css("#live-toggle")).await.unwrap().click().await.unwrap();
        let quiet = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "default", "subject_key": "while-paused"}))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let text = browser.find(Locator::Css("#jobs-body")).await.unwrap().text().await.unwrap();
        assert!(!text.contains("while-paused"), "paused live updates still showed {quiet}");
        browser.find(Locator::Css("#live-toggle")).await.unwrap().click().await.unwrap();
        shows(&browser, "#jobs-body", "the job enqueued while paused", |text| text.contains("while-paused")).await;

        // Recurring jobs.
        browser.goto(&format!("{base}/ui/#/recurring")).await.unwrap();
        shows(&browser, "#recurring", "the recurring jobs", |text| text.contains("nightly-reindex") && text.contains("hourly-digest")).await;
        screenshot(&browser, "recurring").await;

        // The session cookie from another Origin, or to another Host: 403. From our own: 200.
        let session = format!("semantica_ui={}", cookie.value());
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{}}"#;
        let request = |origin: &str, host: &str| {
            format!(
                "POST / HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nCookie: {session}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let send = |request: String| raw_http(std::net::TcpStream::connect(&daemon.rpc_addr).unwrap(), &request);
        assert_eq!(send(request(&base, &daemon.rpc_addr)).0, 200, "our own origin");
        assert_eq!(send(request("http://evil.example", &daemon.rpc_addr)).0, 403, "another origin");
        assert_eq!(send(request("http://evil.example:80", "evil.example:80")).0, 403, "another host (DNS rebinding)");
        // A cookie session cannot make sign-in links.
        let login = r#"{"jsonrpc":"2.0","id":1,"method":"admin.ui_login.v1","params":{}}"#;
        let (status, answer) = send(request(&base, &daemon.rpc_addr).replace(body, login).replace(
            &format!("Content-Length: {}", body.len()),
            &format!("Content-Length: {}", login.len()),
        ));
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["error"]["code"], 4010, "{answer}");
        browser.close().await.unwrap();
    });
}
