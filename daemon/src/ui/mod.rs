//! The web dashboard (`/ui/`, API.md "Web dashboard"): sign-in by one-time code, the
//! session cookie, the Origin and Host checks, and the pages, all built into the binary.
//!
//! The pages are static HTML, CSS and a little JavaScript (`assets/`) that call the
//! daemon's own JSON-RPC methods with the session cookie; the server renders nothing per
//! request but the sign-in answers. What the dashboard keeps costs nothing until someone
//! opens it, except [`Throughput`]: one uncontended lock per engine step that ends jobs.
//!
//! Never: a session that outlives the daemon (they live in memory only), a code that
//! works twice, or a cookie-authorized request from another origin or to another host.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonrpsee::server::{HttpBody, HttpResponse};
use serde_json::{json, Value};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "semantica_ui";
/// How long a sign-in code may wait to be used (API.md: 60 s).
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Codes not yet used, at most; the oldest goes first.
const CODES_MAX: usize = 32;
/// Sessions at once, at most; the oldest goes first.
const SESSIONS_MAX: usize = 64;
/// Minutes the throughput chart covers.
pub const THROUGHPUT_MINUTES: usize = 60;

const INDEX_HTML: &str = include_str!("assets/index.html");
const SIGNIN_HTML: &str = include_str!("assets/signin.html");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Marks a JSON-RPC request authorized by the session cookie (not the token or the
/// socket), so that methods only those may call (`admin.ui_login.v1`) can refuse it.
#[derive(Clone, Copy, Debug)]
pub struct CookieSession;

/// What a request's cookie says.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// A live session, from the daemon's own origin, to the address it is bound to.
    Session,
    /// No cookie, or one of no live session.
    NoSession,
    /// A live session, but the `Origin` or `Host` is not the daemon's own: 403.
    Refused,
}

/// The dashboard's state: codes, sessions and the throughput of the last hour.
pub struct Ui {
    workers: usize,
    addr: OnceLock<SocketAddr>,
    codes: Mutex<BTreeMap<String, Instant>>,
    sessions: Mutex<BTreeMap<String, Instant>>,
    pub throughput: Throughput,
}

impl Ui {
    pub fn new(workers: usize) -> Ui {
        Ui {
            workers,
            addr: OnceLock::new(),
            codes: Mutex::new(BTreeMap::new()),
            sessions: Mutex::new(BTreeMap::new()),
            throughput: Throughput::default(),
        }
    }

    /// The TCP address the daemon is bound to (set once, when it listens).
    pub fn bind(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }

    fn origin(&self) -> Option<String> {
        self.addr.get().map(|addr| format!("http://{addr}"))
    }

    /// A new one-time code: the sign-in URL and when it expires (epoch ms).
    pub fn issue_code(&self) -> Option<(String, u64)> {
        let origin = self.origin()?;
        let code = random_hex();
        let now = Instant::now();
        let mut codes = self.codes.lock().expect("codes lock");
        codes.retain(|_, expires| *expires > now);
        while codes.len() >= CODES_MAX {
            let oldest = codes.iter().min_by_key(|(_, expires)| **expires).map(|(code, _)| code.clone());
            codes.remove(&oldest.expect("not empty"));
        }
        codes.insert(code.clone(), now + CODE_LIFETIME);
        let expires_at = wall_ms() + CODE_LIFETIME.as_millis() as u64;
        Some((format!("{origin}/ui/login?code={code}"), expires_at))
    }

    /// Uses up a code: a new session id if it was live.
    fn redeem(&self, code: &str) -> Option<String> {
        let now = Instant::now();
        let expires = self.codes.lock().expect("codes lock").remove(code)?;
        if expires <= now {
            return None;
        }
        let session = random_hex();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, expires| *expires > now);
        while sessions.len() >= SESSIONS_MAX {
            let oldest = sessions.iter().min_by_key(|(_, expires)| **expires).map(|(id, _)| id.clone());
            sessions.remove(&oldest.expect("not empty"));
        }
        sessions.insert(session.clone(), now + SESSION_LIFETIME);
        Some(session)
    }

    fn live_session(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = session_cookie(headers) else { return false };
        let sessions = self.sessions.lock().expect("sessions lock");
        // Compared in constant time, like the token, against every live session.
        let now = Instant::now();
        sessions
            .iter()
            .fold(false, |found, (id, expires)| found | (same(given.as_bytes(), id.as_bytes()) && *expires > now))
    }

    /// Whether the request's `Host` is the address the daemon is bound to (no DNS
    /// rebinding) and, when `origin_required`, its `Origin` the daemon's own (no CSRF).
    fn own_site(&self, headers: &http::HeaderMap, origin_required: bool) -> bool {
        let Some(addr) = self.addr.get() else { return false };
        let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host_ok = header(http::header::HOST) == Some(addr.to_string().as_str());
        let origin_ok = match header(http::header::ORIGIN) {
            Some(origin) => Some(origin) == self.origin().as_deref(),
            None => !origin_required,
        };
        host_ok && origin_ok
    }

    /// What the request's cookie allows. The metrics route calls this too: a scrape with
    /// the UI cookie is judged exactly as the UI's JSON-RPC calls are.
    pub fn authorized(&self, headers: &http::HeaderMap) -> Access {
        if !self.live_session(headers) {
            return Access::NoSession;
        }
        if self.own_site(headers, true) {
            Access::Session
        } else {
            Access::Refused
        }
    }

    /// A `GET` under `/ui`: the pages, the assets, sign-in. `None` for other paths.
    pub fn route(&self, path: &str, query: Option<&str>, headers: &http::HeaderMap) -> Option<HttpResponse> {
        let response = match path {
            "/ui" => redirect("/ui/"),
            "/ui/login" => {
                let code = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("code="));
                match code.and_then(|code| self.redeem(code)) {
                    Some(session) => {
                        let mut response = redirect("/ui/");
                        let cookie = format!("{COOKIE_NAME}={session}; HttpOnly; SameSite=Strict; Path=/");
                        response.headers_mut().insert(
                            http::header::SET_COOKIE,
                            http::HeaderValue::from_str(&cookie).expect("hex is a valid header"),
                        );
                        response
                    }
                    None => page(
                        400,
                        SIGNIN_HTML.replace("{{MESSAGE}}", "This sign-in link was already used or has expired."),
                    ),
                }
            }
            "/ui/signin" => {
                page(200, SIGNIN_HTML.replace("{{MESSAGE}}", "Sign in from the machine the daemon runs on."))
            }
            "/ui/app.css" => asset("text/css; charset=utf-8", APP_CSS),
            "/ui/app.js" => asset("text/javascript; charset=utf-8", APP_JS),
            "/ui/favicon.svg" => asset("image/svg+xml", FAVICON_SVG),
            "/ui/" | "/ui/api/overview" => {
                if !self.live_session(headers) {
                    return Some(redirect("/ui/signin"));
                }
                // A navigation carries no Origin; the Host still must be ours.
                if !self.own_site(headers, false) {
                    return Some(forbidden());
                }
                if path == "/ui/" {
                    page(200, INDEX_HTML.replace("{{VERSION}}", env!("CARGO_PKG_VERSION")))
                } else {
                    json_response(&json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "workers": self.workers,
                        "throughput": self.throughput.last_hour(wall_ms()),
                    }))
                }
            }
            _ if path.starts_with("/ui/") => text(404, "not found"),
            _ => return None,
        };
        Some(response)
    }
}

/// Jobs ended per minute over the last hour (wall-clock minutes), in memory: the
/// overview's chart reads it instead of the job table.
pub struct Throughput {
    minutes: Mutex<[Minute; THROUGHPUT_MINUTES]>,
}

impl Default for Throughput {
    fn default() -> Throughput {
        Throughput { minutes: Mutex::new([Minute::default(); THROUGHPUT_MINUTES]) }
    }
}

#[derive(Clone, Copy, Default)]
struct Minute {
    /// Minutes since the epoch this slot counts; a slot of an older minute is stale.
    minute: u64,
    done: u64,
    failed: u64,
}

impl Throughput {
    /// Counts jobs that just ended: `done` succeeded, `failed` ended any other way.
    pub fn record(&self, done: u64, failed: u64) {
        if done + failed == 0 {
            return;
        }
        let minute = wall_ms() / 60_000;
        let mut minutes = self.minutes.lock().expect("throughput lock");
        let slot = &mut minutes[(minute % THROUGHPUT_MINUTES as u64) as usize];
        if slot.minute != minute {
            *slot = Minute { minute, done: 0, failed: 0 };
        }
        slot.done += done;
        slot.failed += failed;
    }

    /// The last hour, oldest minute first: `[{"minute": epoch ms, "done", "failed"}]`.
    pub fn last_hour(&self, now_ms: u64) -> Value {
        let now_minute = now_ms / 60_000;
        let minutes = self.minutes.lock().expect("throughput lock");
        let items: Vec<Value> = (0..THROUGHPUT_MINUTES as u64)
            .rev()
            .map(|ago| {
                let minute = now_minute.saturating_sub(ago);
                let slot = minutes[(minute % THROUGHPUT_MINUTES as u64) as usize];
                let (done, failed) = if slot.minute == minute { (slot.done, slot.failed) } else { (0, 0) };
                json!({"minute": minute * 60_000, "done": done, "failed": failed})
            })
            .collect();
        Value::Array(items)
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// 32 bytes in hex from the operating system's random source (two v4 UUIDs' worth).
fn random_hex() -> String {
    (0..2).flat_map(|_| semantica_adapters::random_bytes()).map(|byte| format!("{byte:02x}")).collect()
}

fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('=').map(str::to_owned))
}

fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    difference == 0
}

fn response(status: u16, content_type: &str, body: String) -> HttpResponse {
    HttpResponse::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .body(HttpBody::from(body))
        .expect("a valid response")
}

fn page(status: u16, html: String) -> HttpResponse {
    let mut response = response(status, "text/html; charset=utf-8", html);
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    response(200, content_type, body.to_owned())
}

fn text(status: u16, body: &str) -> HttpResponse {
    response(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json_response(value: &Value) -> HttpResponse {
    response(200, "application/json", value.to_string())
}

fn redirect(location: &str) -> HttpResponse {
    let mut response = text(303, "");
    response.headers_mut().insert(http::header::LOCATION, http::HeaderValue::from_str(location).expect("a path"));
    response
}

/// A cookie-authorized request from another origin or to another host.
pub fn forbidden() -> HttpResponse {
    text(403, "forbidden: the dashboard answers only its own origin on the address the daemon is bound to")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn signed_in() -> (Ui, String) {
        let ui = Ui::new(2);
        ui.bind("127.0.0.1:4000".parse().unwrap());
        let (url, _) = ui.issue_code().unwrap();
        let code = url.split_once("code=").unwrap().1.to_owned();
        let session = ui.redeem(&code).expect("a fresh code works");
        (ui, session)
    }

    #[test]
    fn a_code_works_once() {
        let ui = Ui::new(2);
        ui.bind("127.0.0.1:4000".parse().unwrap());
        let (url, expires_at) = ui.issue_code().unwrap();
        assert!(url.starts_with("http://127.0.0.1:4000/ui/login?code="));
        assert!(expires_at > wall_ms());
        let code = url.split_once("code=").unwrap().1;
        assert!(ui.redeem(code).is_some());
        assert!(ui.redeem(code).is_none(), "a used code is refused");
        assert!(ui.redeem("0123").is_none());
    }

    #[test]
    fn a_session_counts_only_from_its_own_origin_and_host() {
        let (ui, session) = signed_in();
        let cookie = format!("other=1; {COOKIE_NAME}={session}");
        let own = [("cookie", cookie.as_str()), ("host", "127.0.0.1:4000"), ("origin", "http://127.0.0.1:4000")];
        assert_eq!(ui.authorized(&headers(&own)), Access::Session);
        let evil_origin = [("cookie", cookie.as_str()), ("host", "127.0.0.1:4000"), ("origin", "http://evil.example")];
        assert_eq!(ui.authorized(&headers(&evil_origin)), Access::Refused);
        let rebound =
            [("cookie", cookie.as_str()), ("host", "evil.example:4000"), ("origin", "http://evil.example:4000")];
        assert_eq!(ui.authorized(&headers(&rebound)), Access::Refused);
        let no_origin = [("cookie", cookie.as_str()), ("host", "127.0.0.1:4000")];
        assert_eq!(ui.authorized(&headers(&no_origin)), Access::Refused);
        let stranger =
            [("cookie", "semantica_ui=00ff"), ("host", "127.0.0.1:4000"), ("origin", "http://127.0.0.1:4000")];
        assert_eq!(ui.authorized(&headers(&stranger)), Access::NoSession);
    }

    #[test]
    fn the_whole_page_stays_under_300_kib() {
        let bytes = INDEX_HTML.len() + APP_CSS.len() + APP_JS.len() + FAVICON_SVG.len();
        assert!(bytes < 300 * 1024, "the dashboard's assets are {bytes} bytes");
    }

    #[test]
    fn pages_need_a_session_and_assets_do_not() {
        let (ui, session) = signed_in();
        let none = http::HeaderMap::new();
        let page = ui.route("/ui/", None, &none).unwrap();
        assert_eq!((page.status().as_u16(), page.headers()["location"].to_str().unwrap()), (303, "/ui/signin"));
        assert_eq!(ui.route("/ui/app.js", None, &none).unwrap().status(), 200);
        let cookie = format!("{COOKIE_NAME}={session}");
        let own = headers(&[("cookie", cookie.as_str()), ("host", "127.0.0.1:4000")]);
        assert_eq!(ui.route("/ui/", None, &own).unwrap().status(), 200);
        let rebound = headers(&[("cookie", cookie.as_str()), ("host", "attacker.example:4000")]);
        assert_eq!(ui.route("/ui/", None, &rebound).unwrap().status(), 403);
        assert!(ui.route("/metrics", None, &own).is_none(), "not the dashboard's");
    }

    #[test]
    fn throughput_keeps_the_last_hour_only() {
        let throughput = Throughput::default();
        throughput.record(3, 1);
        throughput.record(0, 0);
        let hour = throughput.last_hour(wall_ms());
        let items = hour.as_array().unwrap();
        assert_eq!(items.len(), THROUGHPUT_MINUTES);
        let sum = |key: &str| items.iter().map(|m| m[key].as_u64().unwrap()).sum::<u64>();
        assert_eq!((sum("done"), sum("failed")), (3, 1));
        let later = throughput.last_hour(wall_ms() + 2 * 3600 * 1000);
        assert!(later.as_array().unwrap().iter().all(|m| m["done"] == 0), "an hour later it is gone");
    }
}
