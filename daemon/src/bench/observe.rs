//! `--observe`: while a scenario runs, what watching the daemon costs it. A Prometheus
//! scraper (`GET /metrics` every second, with the token) and an open dashboard overview
//! page, doing what `ui/assets/app.js` does: sign in through `admin.ui_login.v1` and the
//! one-time link, load the page and its assets once, then every `REFRESH_MS` call
//! `admin.stats.v1` (with the cookie and the daemon's Origin, as the browser sends a
//! POST) and `GET /ui/api/overview`. Each side keeps one HTTP/1.1 connection alive, as a
//! scraper and a browser do.
//!
//! It measures nothing itself: it counts what it did (`observe_scrapes`,
//! `observe_dashboard_polls`, `observe_errors`) next to the scenario's figures, so that a
//! run with `--observe` can be compared with one without. An error is counted, never
//! fatal: the scenario's figures are the point.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Map, Value};

use super::target::Daemon;
use super::BenchResult;
use semantica_client::Client;

/// How often the scraper scrapes.
pub(crate) const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the overview page refreshes (`REFRESH_MS` in `ui/assets/app.js`).
pub(crate) const DASHBOARD_INTERVAL: Duration = Duration::from_millis(2000);
/// One observer request that takes longer is counted as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The assets an overview page loads once.
const PAGE_ASSETS: [&str; 4] = ["/ui/", "/ui/app.css", "/ui/app.js", "/ui/favicon.svg"];

#[derive(Default)]
struct Counts {
    scrapes: AtomicU64,
    dashboard_polls: AtomicU64,
    errors: AtomicU64,
}

/// The scraper and the dashboard of one daemon; they stop when this is dropped.
pub(crate) struct Observer {
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl Observer {
    /// Starts watching `daemon` (inside the bench's runtime).
    pub(crate) fn start(daemon: &Daemon) -> Observer {
        let counts = Arc::new(Counts::default());
        let scraper = tokio::spawn(scrape(daemon.addr.clone(), daemon.token.clone(), Arc::clone(&counts)));
        let client = daemon.client();
        let dashboard = tokio::spawn(dashboard(daemon.addr.clone(), client, Arc::clone(&counts)));
        Observer { counts, tasks: vec![scraper, dashboard] }
    }

    /// What it did so far.
    pub(crate) fn figures(&self, figures: &mut Map<String, Value>) {
        figures.insert("observe_scrapes".into(), json!(self.counts.scrapes.load(Ordering::Relaxed)));
        figures.insert("observe_dashboard_polls".into(), json!(self.counts.dashboard_polls.load(Ordering::Relaxed)));
        figures.insert("observe_errors".into(), json!(self.counts.errors.load(Ordering::Relaxed)));
    }
}

async fn scrape(addr: String, token: String, counts: Arc<Counts>) {
    let mut connection = Connection::new(&addr);
    let mut ticks = tokio::time::interval(SCRAPE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let request = connection.get("/metrics").header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        match connection.send(request, Bytes::new()).await {
            Ok((200, body)) if body.starts_with(b"# HELP") => counts.scrapes.fetch_add(1, Ordering::Relaxed),
            _ => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

async fn dashboard(addr: String, client: BenchResult<Client>, counts: Arc<Counts>) {
    let mut connection = Connection::new(&addr);
    let cookie = match sign_in(&mut connection, client).await {
        Ok(cookie) => cookie,
        Err(_) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    for path in PAGE_ASSETS {
        let request = connection.get(path).header(http::header::COOKIE, &cookie);
        if !matches!(connection.send(request, Bytes::new()).await, Ok((200, _))) {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let origin = format!("http://{addr}");
    let mut ticks = tokio::time::interval(DASHBOARD_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for id in 1u64.. {
        ticks.tick().await;
        // The page sends both at once and waits for both (`Promise.all`); over one
        // connection they go one after the other.
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "admin.stats.v1", "params": {}}).to_string();
        let stats = connection
            .post("/")
            .header(http::header::COOKIE, &cookie)
            .header(http::header::ORIGIN, &origin)
            .header(http::header::CONTENT_TYPE, "application/json");
        let stats_ok = matches!(connection.send(stats, Bytes::from(body)).await, Ok((200, body)) if is_result(&body));
        let overview = connection.get("/ui/api/overview").header(http::header::COOKIE, &cookie);
        let overview_ok = matches!(connection.send(overview, Bytes::new()).await, Ok((200, _)));
        if stats_ok && overview_ok {
            counts.dashboard_polls.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn is_result(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|answer| answer.get("result").is_some())
}

/// A one-time link from `admin.ui_login.v1` (with the token), redeemed for the session
/// cookie (`name=value`).
async fn sign_in(connection: &mut Connection, client: BenchResult<Client>) -> BenchResult<String> {
    let answer = client?.call::<_, Value>("admin.ui_login.v1", &Map::new()).await.map_err(|e| e.to_string())?;
    let url = answer["url"].as_str().ok_or("admin.ui_login.v1 gave no url")?;
    let path = url.find("/ui/login").map(|start| &url[start..]).ok_or_else(|| format!("sign-in link {url:?}"))?;
    let response = connection.send_full(connection.get(path), Bytes::new()).await?;
    let cookie = response
        .headers()
        .get(http::header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .ok_or("the sign-in link set no cookie")?;
    Ok(cookie.to_owned())
}

/// The group commits of a measured phase, from the daemon's `/metrics`
/// (`semantica_store_commit_seconds`, summed over `--daemons`): how many transactions
/// carried the phase's jobs, and how long their `COMMIT` statements took. Jobs per
/// commit is what bounds a drain at few workers (one commit per freed slot) and single
/// enqueues (one commit per lone caller), so the throughput scenarios report it next to
/// their rates. It counts everything the daemon committed meanwhile (the scheduler's and
/// the probe's steps too): a few commits a second.
pub(crate) struct CommitMeter {
    at_start: Option<CommitTotals>,
}

/// `semantica_store_commit_seconds`' `_count` and `_sum`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct CommitTotals {
    pub(crate) count: u64,
    pub(crate) seconds: f64,
}

impl CommitTotals {
    /// From a Prometheus text exposition; `None` without both lines.
    pub(crate) fn parse(exposition: &str) -> Option<CommitTotals> {
        let value = |name: &str| {
            exposition.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        };
        let count = value("semantica_store_commit_seconds_count")?;
        let seconds = value("semantica_store_commit_seconds_sum")?;
        Some(CommitTotals { count: count as u64, seconds })
    }

    async fn scrape(daemon: &Daemon) -> Option<CommitTotals> {
        let mut total = CommitTotals::default();
        for one in std::iter::once(daemon).chain(&daemon.peers) {
            let mut connection = Connection::new(&one.addr);
            let request =
                connection.get("/metrics").header(http::header::AUTHORIZATION, format!("Bearer {}", one.token));
            let (status, body) = connection.send(request, Bytes::new()).await.ok()?;
            if status != 200 {
                return None;
            }
            let totals = CommitTotals::parse(std::str::from_utf8(&body).ok()?)?;
            total.count += totals.count;
            total.seconds += totals.seconds;
        }
        Some(total)
    }
}

impl CommitMeter {
    pub(crate) async fn start(daemon: &Daemon) -> CommitMeter {
        CommitMeter { at_start: CommitTotals::scrape(daemon).await }
    }

    /// `commits`, `commit_us_mean` and, given the phase's jobs, `jobs_per_commit`. None
    /// of them when `/metrics` could not be read (before or now).
    pub(crate) async fn figures(&self, daemon: &Daemon, jobs: Option<u64>, figures: &mut Map<String, Value>) {
        let (Some(start), Some(now)) = (self.at_start, CommitTotals::scrape(daemon).await) else { return };
        commit_figures(start, now, jobs, figures);
    }
}

/// The figures of the commits between `start` and `now`.
pub(crate) fn commit_figures(
    start: CommitTotals,
    now: CommitTotals,
    jobs: Option<u64>,
    figures: &mut Map<String, Value>,
) {
    let commits = now.count.saturating_sub(start.count);
    figures.insert("commits".into(), json!(commits));
    if commits == 0 {
        return;
    }
    let mean_us = (now.seconds - start.seconds).max(0.0) / commits as f64 * 1e6;
    figures.insert("commit_us_mean".into(), json!((mean_us * 10.0).round() / 10.0));
    if let Some(jobs) = jobs {
        figures.insert("jobs_per_commit".into(), json!((jobs as f64 / commits as f64 * 100.0).round() / 100.0));
    }
}

/// One HTTP/1.1 connection to the daemon, kept alive and opened again after an error.
struct Connection {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(addr: &str) -> Connection {
        Connection { addr: addr.to_owned(), sender: None }
    }

    fn get(&self, path: &str) -> http::request::Builder {
        http::Request::get(path).header(http::header::HOST, &self.addr)
    }

    fn post(&self, path: &str) -> http::request::Builder {
        http::Request::post(path).header(http::header::HOST, &self.addr)
    }

    /// The status and body of the answer.
    async fn send(&mut self, request: http::request::Builder, body: Bytes) -> BenchResult<(u16, Bytes)> {
        let response = self.send_full(request, body).await?;
        Ok((response.status().as_u16(), response.into_body()))
    }

    async fn send_full(&mut self, request: http::request::Builder, body: Bytes) -> BenchResult<http::Response<Bytes>> {
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.round_trip(request)).await;
        let answer = answer.map_err(|_| "timed out".to_owned()).and_then(|answer| answer);
        if answer.is_err() {
            self.sender = None; // a fresh connection next time
        }
        answer
    }

    async fn round_trip(&mut self, request: http::Request<Full<Bytes>>) -> BenchResult<http::Response<Bytes>> {
        if self.sender.as_ref().is_none_or(|sender| sender.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.addr).await.map_err(|e| e.to_string())?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_totals_are_read_from_the_exposition() {
        let exposition = "# HELP semantica_store_commit_seconds How long each group commit took.\n\
                          # TYPE semantica_store_commit_seconds histogram\n\
                          semantica_store_commit_seconds_bucket{le=\"0.001\"} 20\n\
                          semantica_store_commit_seconds_sum 0.5\n\
                          semantica_store_commit_seconds_count 25\n\
                          semantica_store_commit_seconds_count_other 7\n";
        assert_eq!(CommitTotals::parse(exposition), Some(CommitTotals { count: 25, seconds: 0.5 }));
        assert_eq!(CommitTotals::parse("semantica_store_commit_seconds_sum 0.5\n"), None, "no count");
        assert_eq!(CommitTotals::parse("semantica_store_commit_seconds_count 3\n"), None, "no sum");
    }

    #[test]
    fn commit_figures_are_those_of_the_phase() {
        let start = CommitTotals { count: 100, seconds: 1.0 };
        let now = CommitTotals { count: 600, seconds: 1.02 };
        let mut figures = Map::new();
        commit_figures(start, now, Some(2_000), &mut figures);
        assert_eq!(figures["commits"], json!(500));
        assert_eq!(figures["commit_us_mean"], json!(40.0));
        assert_eq!(figures["jobs_per_commit"], json!(4.0));

        let mut none = Map::new();
        commit_figures(start, start, Some(2_000), &mut none);
        assert_eq!(none["commits"], json!(0));
        assert!(!none.contains_key("jobs_per_commit") && !none.contains_key("commit_us_mean"), "{none:?}");
    }
}
