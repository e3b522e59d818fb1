//! Hostile input over the real wire, and the security promises of API.md and SECURITY.md,
//! against the real binary on a temp `SEMANTICA_HOME`.
//!
//! Most cases speak raw HTTP/1.1 over a `std` `TcpStream`, because a JSON-RPC client
//! cannot produce the bytes (bad JSON, wrong versions, oversize bodies, slow senders).
//! The catalogue counts what it tried and, after every case, checks that the daemon is
//! still alive and answers `/health`; at the end, that no answer was a 5000 and that
//! every job acknowledged before the catalogue is still there.

mod common;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---- raw HTTP -----------------------------------------------------------------------

/// One HTTP response as read off the socket. `status` 0: the connection closed without one.
#[derive(Debug, Default)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// Reads one response: Content-Length, chunked, or up to the close.
fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            if head.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            break;
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        head.push_str(&String::from_utf8_lossy(&line));
    }
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = Vec::new();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        for _ in 0..1_000_000 {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {size_line:?}")))?;
            if size == 0 {
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 2 {
                    trailer.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response { status, body })
}

/// One connection, usable for several requests (keep-alive).
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        let stream = TcpStream::connect(addr).expect("connect to the daemon");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        Connection { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    fn receive(&mut self) -> io::Result<Response> {
        read_response(&mut self.reader)
    }
}

fn post_request(token: Option<&str>, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let close = if keep_alive { "" } else { "Connection: close\r\n" };
    let mut bytes = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n{close}\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const HEALTH_REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// A JSON-RPC call body with `params` as raw text, so that it may be anything.
fn call(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":{},"params":{params}}}"#, json!(method))
}

/// The daemon under test, reached over raw TCP.
struct Target {
    addr: String,
    token: String,
    pid: i32,
}

impl Target {
    fn of(daemon: &Daemon, home: &Path) -> Target {
        let info: Value = serde_json::from_str(&std::fs::read_to_string(home.join("daemon.json")).unwrap()).unwrap();
        Target { addr: daemon.rpc_addr.clone(), token: daemon.token.clone(), pid: info["pid"].as_i64().unwrap() as i32 }
    }

    /// Sends `request` on a new connection and reads one response. A write cut short by
    /// an early answer is not an error: the answer is what counts.
    fn exchange(&self, request: &[u8]) -> Response {
        let mut connection = Connection::open(&self.addr);
        let _ = connection.send(request);
        connection.receive().unwrap_or_default()
    }

    /// `exchange` for a request that stops short: the client then hangs up its side.
    fn exchange_and_hang_up(&self, request: &[u8]) -> Response {
        let mut connection = Connection::open(&self.addr);
        let _ = connection.send(request);
        let _ = connection.writer.shutdown(std::net::Shutdown::Write);
        connection.reader.get_ref().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        connection.receive().unwrap_or_default()
    }

    fn post(&self, body: &[u8]) -> Response {
        self.exchange(&post_request(Some(&self.token), body, false))
    }

    /// The whole JSON-RPC response object of one call.
    fn rpc(&self, method: &str, params: Value) -> Value {
        self.post(call(method, &params.to_string()).as_bytes()).json()
    }

    fn healthy(&self) -> Result<(), String> {
        if !alive(self.pid) {
            return Err("the daemon process is gone".into());
        }
        let started = Instant::now();
        let response = self.exchange(HEALTH_REQUEST);
        if response.status != 200 || response.json()["status"] != "ok" {
            return Err(format!("/health answered {} {}", response.status, response.text()));
        }
        if started.elapsed() > Duration::from_secs(5) {
            return Err(format!("/health took {:?}", started.elapsed()));
        }
        Ok(())
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|dir| dir.count()).unwrap_or(0)
    }
}

// ---- expectations -------------------------------------------------------------------

type Verdict = Result<(), String>;

/// Every object with `"code": 5000` anywhere in a response.
fn has_internal_error(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.get("code") == Some(&json!(5000)) || map.values().any(has_internal_error),
        Value::Array(items) => items.iter().any(has_internal_error),
        _ => false,
    }
}

/// `response` is one JSON-RPC error with `code` (and `data.field == field` when given).
fn error_is(response: &Value, code: i64, field: Option<&str>) -> Verdict {
    let error = &response["error"];
    if error["code"].as_i64() != Some(code) {
        return Err(format!("want error {code}"));
    }
    if let Some(field) = field {
        if error["data"]["field"].as_str() != Some(field) {
            return Err(format!("want error {code} with data.field {field:?}"));
        }
    }
    Ok(())
}

/// API.md "Errors": every error answer has `data.kind` (snake_case) and `data.details`,
/// jsonrpsee's own (-32601, a batch's -32600) included. The first error of `response`
/// (one answer or a batch's) without them.
fn error_off_contract(response: &Value) -> Option<Value> {
    let answers = match response {
        Value::Array(answers) => answers.iter().collect(),
        answer => vec![answer],
    };
    answers.into_iter().filter_map(|answer| answer.get("error")).find_map(|error| {
        let kind = error["data"]["kind"].as_str().unwrap_or_default();
        let snake = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        (!snake || !error["data"]["details"].is_string()).then(|| error.clone())
    })
}

fn rpc_error(code: i64) -> impl Fn(&Response) -> Verdict {
    move |response| error_is(&response.json(), code, None)
}

fn validation(field: &'static str) -> impl Fn(&Response) -> Verdict {
    move |response| error_is(&response.json(), 4000, Some(field))
}

/// One of several acceptable answers (where the contract allows more than one).
fn either(
    first: impl Fn(&Response) -> Verdict,
    second: impl Fn(&Response) -> Verdict,
) -> impl Fn(&Response) -> Verdict {
    move |response| first(response).or_else(|a| second(response).map_err(|b| format!("{a}, or {b}")))
}

fn accepted(response: &Response) -> Verdict {
    if response.status == 200 && response.json()["result"].is_object() {
        Ok(())
    } else {
        Err("want a result".into())
    }
}

/// Anything but a crash or an internal error: for bytes no contract speaks of (broken
/// HTTP). A 505 for `HTTP/9.9` is a fine answer; a 500 is not.
fn survives(response: &Response) -> Verdict {
    if response.status == 500 {
        return Err("want no 500".into());
    }
    Ok(())
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= 240 {
        return format!("{text:?}");
    }
    let cut = (0..=200).rev().find(|i| text.is_char_boundary(*i)).unwrap();
    format!("{:?}… ({} bytes)", &text[..cut], bytes.len())
}

/// The catalogue: runs cases, counts them, and collects every broken promise.
struct Catalogue<'a> {
    target: &'a Target,
    tried: usize,
    violations: Vec<String>,
}

impl Catalogue<'_> {
    /// Raw bytes on a fresh connection.
    fn raw(&mut self, name: &str, request: &[u8], expect: impl Fn(&Response) -> Verdict) {
        let response = self.target.exchange(request);
        self.judge(name, request, response, expect);
    }

    /// Raw bytes that stop short of what they announce; then the client hangs up.
    fn short(&mut self, name: &str, request: &[u8], expect: impl Fn(&Response) -> Verdict) {
        let response = self.target.exchange_and_hang_up(request);
        self.judge(name, request, response, expect);
    }

    fn judge(&mut self, name: &str, request: &[u8], response: Response, expect: impl Fn(&Response) -> Verdict) {
        self.tried += 1;
        if let Err(why) = expect(&response) {
            self.violations.push(format!(
                "{name}: {why}\n    request:  {}\n    response: {} {}",
                preview(request),
                response.status,
                preview(&response.body)
            ));
        }
        if let Some(error) = error_off_contract(&response.json()) {
            self.violations.push(format!("{name}: an error without data.kind and data.details: {error}"));
        }
        if has_internal_error(&response.json()) || response.status == 500 {
            self.violations.push(format!("{name}: a 5000/500 answer: {} {}", response.status, preview(&response.body)));
        }
        if let Err(why) = self.target.healthy() {
            panic!("after case {name:?} ({} tried): {why}\nviolations so far: {:#?}", self.tried, self.violations);
        }
    }

    /// A POST with the right token.
    fn body(&mut self, name: &str, body: &[u8], expect: impl Fn(&Response) -> Verdict) {
        self.raw(name, &post_request(Some(&self.target.token), body, false), expect);
    }

    /// One call with `params` as raw text.
    fn call(&mut self, name: &str, method: &str, params: &str, expect: impl Fn(&Response) -> Verdict) {
        self.body(name, call(method, params).as_bytes(), expect);
    }
}

// ---- the catalogue ------------------------------------------------------------------

const ENQUEUE: &str = "dev.enqueue.v1";

/// A valid enqueue with `extra` merged in, as raw JSON text (so `extra` may be anything).
fn job_with(extra: &str) -> String {
    let base = r#"{"job_type":"noop","queue":"default","subject_key":"hostile""#;
    if extra.is_empty() {
        format!("{base}}}")
    } else {
        format!("{base},{extra}}}")
    }
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Jobs that must survive the catalogue: (id, the states they may be in afterwards).
fn enqueue_survivors(target: &Target) -> Vec<(String, Vec<&'static str>)> {
    let mut jobs = Vec::new();
    for index in 0..12 {
        let (params, states) = match index % 3 {
            0 => (
                json!({"job_type": "noop", "queue": "default", "subject_key": format!("survivor-{index}")}),
                vec!["QUEUED", "RUNNING", "DONE"],
            ),
            1 => (
                json!({"job_type": "noop", "queue": "default", "subject_key": format!("survivor-{index}'; DROP TABLE jobs; --"),
                       "schedule": {"delay_ms": 3_600_000}}),
                vec!["SCHEDULED"],
            ),
            _ => (
                json!({"job_type": "noop", "queue": "default", "subject_key": format!("survivor-{index}"),
                       "conditions": {"wait_for_event": "never-signalled"}, "tag": "survivor"}),
                vec!["SCHEDULED"],
            ),
        };
        let response = target.rpc(ENQUEUE, params);
        let id = response["result"]["job_id"].as_str().unwrap_or_else(|| panic!("enqueue failed: {response}"));
        jobs.push((id.to_owned(), states));
    }
    jobs
}

#[test]
fn bad_inputs_get_the_contract_answer_and_the_daemon_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let survivors = enqueue_survivors(&target);
    let known = survivors[1].0.clone();
    let mut c = Catalogue { target: &target, tried: 0, violations: Vec::new() };

    // Malformed JSON: -32700.
    for (name, body) in [
        ("open brace", "{"),
        ("truncated call", r#"{"jsonrpc":"2.0","id":1,"method":"dev.get.v1","params":{"#),
        ("not json", "hello"),
        ("single quotes", "{'jsonrpc':'2.0','id':1,'method':'dev.get.v1'}"),
        ("trailing garbage", r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{}} xyz"#),
        ("bare NaN", r#"{"jsonrpc":"2.0","id":1,"method":"dev.enqueue.v1","params":{"priority":NaN}}"#),
        ("bare Infinity", r#"{"jsonrpc":"2.0","id":1,"method":"dev.enqueue.v1","params":{"priority":Infinity}}"#),
        ("trailing comma", r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{},}"#),
        ("comment", r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1" /* hi */}"#),
    ] {
        c.body(name, body.as_bytes(), rpc_error(-32700));
    }
    c.body("empty body", b"", rpc_error(-32700));

    // Not a request: -32600.
    for (name, body) in [
        ("jsonrpc 1.0", r#"{"jsonrpc":"1.0","id":1,"method":"admin.stats.v1","params":{}}"#),
        ("jsonrpc missing", r#"{"id":1,"method":"admin.stats.v1","params":{}}"#),
        ("jsonrpc as a number", r#"{"jsonrpc":2.0,"id":1,"method":"admin.stats.v1","params":{}}"#),
        ("method missing", r#"{"jsonrpc":"2.0","id":1,"params":{}}"#),
        ("method a number", r#"{"jsonrpc":"2.0","id":1,"method":42}"#),
        ("batch of 0", "[]"),
    ] {
        c.body(name, body.as_bytes(), rpc_error(-32600));
    }

    // Unknown methods: -32601.
    // `rpc.discover` is served since API.md v1.1; its near-misses are not.
    for method in [
        "dev.nope.v1",
        "",
        "dev.enqueue.v2",
        "DEV.ENQUEUE.V1",
        "dev.enqueue.v1\u{0}",
        "rpc.discover.v1",
        "RPC.DISCOVER",
    ] {
        c.call(&format!("unknown method {method:?}"), method, "{}", rpc_error(-32601));
    }
    c.call("a 64 KiB method name", &"m".repeat(64 * 1024), "{}", rpc_error(-32601));

    // Params of the wrong type: 4000 naming the field.
    let id = format!("{known:?}");
    for (name, method, params, field) in [
        ("get params an array", "dev.get.v1", format!("[{id}]"), "params"),
        ("job_type a number", ENQUEUE, r#"{"job_type":5,"queue":"default","subject_key":"s"}"#.into(), "job_type"),
        (
            "subject_key a bool",
            ENQUEUE,
            r#"{"job_type":"noop","queue":"default","subject_key":true}"#.into(),
            "subject_key",
        ),
        ("generation a string", ENQUEUE, job_with(r#""generation":"1""#), "generation"),
        ("priority a fraction", ENQUEUE, job_with(r#""priority":1.5"#), "priority"),
        ("exec a string", ENQUEUE, job_with(r#""exec":"ls""#), "exec"),
        ("exec.args a string", ENQUEUE, job_with(r#""exec":{"command":"true","args":"x"}"#), "exec.args"),
        ("exec.env values numbers", ENQUEUE, job_with(r#""exec":{"command":"true","env":{"A":1}}"#), "exec.env"),
        ("backoff an array", ENQUEUE, job_with(r#""backoff":[]"#), "backoff"),
        ("schedule a string", ENQUEUE, job_with(r#""schedule":"soon""#), "schedule"),
        (
            "wait_for_idle a string",
            ENQUEUE,
            job_with(r#""conditions":{"wait_for_idle":"yes"}"#),
            "conditions.wait_for_idle",
        ),
        ("get job_id a number", "dev.get.v1", r#"{"job_id":5}"#.into(), "job_id"),
        ("get job_id not a uuid", "dev.get.v1", r#"{"job_id":"not-a-uuid"}"#.into(), "job_id"),
        ("get job_id missing", "dev.get.v1", "{}".into(), "job_id"),
        ("wait timeout_ms a string", "dev.wait.v1", format!(r#"{{"job_id":{id},"timeout_ms":"1000"}}"#), "timeout_ms"),
        (
            "wait timeout_ms over the max",
            "dev.wait.v1",
            format!(r#"{{"job_id":{id},"timeout_ms":300001}}"#),
            "timeout_ms",
        ),
        ("cancel tag a number", "dev.cancel.v1", r#"{"tag":5}"#.into(), "tag"),
        ("query filter a string", "dev.query_jobs.v1", r#"{"filter":"x"}"#.into(), "filter"),
        ("query limit 0", "dev.query_jobs.v1", r#"{"limit":0}"#.into(), "limit"),
        ("query limit 201", "dev.query_jobs.v1", r#"{"limit":201}"#.into(), "limit"),
        ("query limit a string", "dev.query_jobs.v1", r#"{"limit":"5"}"#.into(), "limit"),
        ("query sort unknown", "dev.query_jobs.v1", r#"{"sort":"UP"}"#.into(), "sort"),
        ("query cursor forged", "dev.query_jobs.v1", r#"{"cursor":"zzz"}"#.into(), "cursor"),
        ("query state unknown", "dev.query_jobs.v1", r#"{"filter":{"state":["NOPE"]}}"#.into(), "filter.state"),
        ("tail offset a string", "logs.tail.v1", format!(r#"{{"job_id":{id},"offset":"0"}}"#), "offset"),
        ("tail limit 0", "logs.tail.v1", format!(r#"{{"job_id":{id},"offset":0,"limit":0}}"#), "limit"),
        ("tail limit over 1 MiB", "logs.tail.v1", format!(r#"{{"job_id":{id},"offset":0,"limit":1048577}}"#), "limit"),
        ("batch jobs a string", "dev.enqueue_batch.v1", r#"{"jobs":"x"}"#.into(), "jobs"),
        ("batch jobs empty", "dev.enqueue_batch.v1", r#"{"jobs":[]}"#.into(), "jobs"),
        ("event name a number", "dev.event.v1", r#"{"name":5}"#.into(), "name"),
        ("event name empty", "dev.event.v1", r#"{"name":""}"#.into(), "name"),
        (
            "maintenance force_vacuum a string",
            "admin.maintenance.v1",
            r#"{"force_vacuum":"yes"}"#.into(),
            "force_vacuum",
        ),
    ] {
        c.call(name, method, &params, validation(field));
    }
    c.call("cancel without a selector", "dev.cancel.v1", "{}", rpc_error(4000));
    let batch_with_a_bad_second = format!(r#"{{"jobs":[{},{}]}}"#, job_with(""), job_with(r#""priority":"high""#));
    c.call("batch whose second job is bad", "dev.enqueue_batch.v1", &batch_with_a_bad_second, |r: &Response| {
        error_is(&r.json(), 4000, Some("priority"))?;
        (r.json()["error"]["data"]["index"] == 1).then_some(()).ok_or_else(|| "want data.index 1".to_owned())
    });

    // Unknown fields: 4000 naming the field.
    for (name, method, params, field) in [
        ("enqueue colour", ENQUEUE, job_with(r#""colour":"red""#), "colour"),
        ("exec.shell", ENQUEUE, job_with(r#""exec":{"command":"true","shell":true}"#), "exec.shell"),
        ("backoff.base", ENQUEUE, job_with(r#""backoff":{"base":1}"#), "backoff.base"),
        ("schedule.every", ENQUEUE, job_with(r#""schedule":{"at":1,"every":2}"#), "schedule.every"),
        ("get extra", "dev.get.v1", format!(r#"{{"job_id":{id},"extra":1}}"#), "extra"),
        ("cancel force", "dev.cancel.v1", format!(r#"{{"job_id":{id},"force":true}}"#), "force"),
        ("wait poll", "dev.wait.v1", format!(r#"{{"job_id":{id},"timeout_ms":1,"poll":1}}"#), "poll"),
        ("query filter.subject", "dev.query_jobs.v1", r#"{"filter":{"subject":"x"}}"#.into(), "filter.subject"),
        ("query page", "dev.query_jobs.v1", r#"{"page":2}"#.into(), "page"),
        ("tail whence", "logs.tail.v1", format!(r#"{{"job_id":{id},"offset":0,"whence":1}}"#), "whence"),
        ("maintenance vacuum", "admin.maintenance.v1", r#"{"vacuum":true}"#.into(), "vacuum"),
        ("event payload", "dev.event.v1", r#"{"name":"e","payload":1}"#.into(), "payload"),
        (
            "batch priority",
            "dev.enqueue_batch.v1",
            format!(r#"{{"jobs":[{}],"priority":1}}"#, job_with("")),
            "priority",
        ),
    ] {
        c.call(name, method, &params, validation(field));
    }

    // Huge numbers: 4000 naming the field.
    for (name, extra, field) in [
        ("generation u64::MAX", r#""generation":18446744073709551615"#, "generation"),
        ("generation i64::MAX + 1", r#""generation":9223372036854775808"#, "generation"),
        ("generation 1e30", r#""generation":1e30"#, "generation"),
        ("generation 30 digits", r#""generation":100000000000000000000000000000"#, "generation"),
        ("priority i32::MAX + 1", r#""priority":2147483648"#, "priority"),
        ("priority i32::MIN - 1", r#""priority":-2147483649"#, "priority"),
        ("max_attempts 101", r#""max_attempts":101"#, "max_attempts"),
        ("max_attempts 1e10", r#""max_attempts":10000000000"#, "max_attempts"),
        ("timeout_ms i64::MAX", r#""timeout_ms":9223372036854775807"#, "timeout_ms"),
        ("ttl_ms i64::MAX", r#""ttl_ms":9223372036854775807"#, "ttl_ms"),
        ("deadline i64::MAX", r#""deadline":9223372036854775807"#, "deadline"),
        ("schedule.at i64::MAX", r#""schedule":{"at":9223372036854775807}"#, "schedule.at"),
        ("schedule.delay_ms i64::MAX", r#""schedule":{"delay_ms":9223372036854775807}"#, "schedule.delay_ms"),
        ("backoff.base_ms i64::MAX", r#""backoff":{"base_ms":9223372036854775807}"#, "backoff.base_ms"),
        ("backoff.max_ms u64::MAX", r#""backoff":{"max_ms":18446744073709551615}"#, "backoff.max_ms"),
        ("backoff.factor 1e308", r#""backoff":{"factor":1e308}"#, "backoff.factor"),
    ] {
        c.call(name, ENQUEUE, &job_with(extra), validation(field));
    }
    c.call(
        "wait timeout_ms u64::MAX",
        "dev.wait.v1",
        &format!(r#"{{"job_id":{id},"timeout_ms":18446744073709551615}}"#),
        validation("timeout_ms"),
    );
    c.call(
        "tail offset u64::MAX",
        "logs.tail.v1",
        &format!(r#"{{"job_id":{id},"offset":18446744073709551615}}"#),
        |r: &Response| {
            accepted(r)?;
            let result = &r.json()["result"];
            (result["chunk"] == "" && result["next_offset"] == json!(u64::MAX))
                .then_some(())
                .ok_or_else(|| "want an empty chunk at that offset".to_owned())
        },
    );
    c.call(
        "query created_after u64::MAX",
        "dev.query_jobs.v1",
        r#"{"filter":{"created_after":18446744073709551615}}"#,
        |r: &Response| {
            accepted(r)?;
            (r.json()["result"]["items"] == json!([])).then_some(()).ok_or_else(|| "want no items".to_owned())
        },
    );
    c.call(
        "payload with huge numbers",
        ENQUEUE,
        &job_with(r#""payload":{"n":1e308,"m":123456789012345678901234567890,"k":-1e-308}"#),
        accepted,
    );

    // Negative and NaN-like values: 4000 naming the field.
    for (name, extra, field) in [
        ("generation -1", r#""generation":-1"#, "generation"),
        ("max_attempts 0", r#""max_attempts":0"#, "max_attempts"),
        ("max_attempts -1", r#""max_attempts":-1"#, "max_attempts"),
        ("timeout_ms 0", r#""timeout_ms":0"#, "timeout_ms"),
        ("timeout_ms -5", r#""timeout_ms":-5"#, "timeout_ms"),
        ("ttl_ms -1", r#""ttl_ms":-1"#, "ttl_ms"),
        ("deadline -1", r#""deadline":-1"#, "deadline"),
        ("schedule.at -1", r#""schedule":{"at":-1}"#, "schedule.at"),
        ("schedule.delay_ms -1", r#""schedule":{"delay_ms":-1}"#, "schedule.delay_ms"),
        ("backoff.base_ms -1", r#""backoff":{"base_ms":-1}"#, "backoff.base_ms"),
        ("backoff.factor -2", r#""backoff":{"factor":-2.0}"#, "backoff.factor"),
        ("backoff.factor 0", r#""backoff":{"factor":0}"#, "backoff.factor"),
        ("backoff.jitter -0.5", r#""backoff":{"jitter":-0.5}"#, "backoff.jitter"),
        ("backoff.jitter 1.5", r#""backoff":{"jitter":1.5}"#, "backoff.jitter"),
        ("backoff.factor \"NaN\"", r#""backoff":{"factor":"NaN"}"#, "backoff.factor"),
        ("backoff.factor \"Infinity\"", r#""backoff":{"factor":"Infinity"}"#, "backoff.factor"),
        ("backoff.jitter \"-Infinity\"", r#""backoff":{"jitter":"-Infinity"}"#, "backoff.jitter"),
        ("priority \"NaN\"", r#""priority":"NaN""#, "priority"),
        ("generation \"1e400\"", r#""generation":"1e400""#, "generation"),
        ("timeout_ms -0.0", r#""timeout_ms":-0.0"#, "timeout_ms"),
    ] {
        c.call(name, ENQUEUE, &job_with(extra), validation(field));
    }
    c.call("tail offset -1", "logs.tail.v1", &format!(r#"{{"job_id":{id},"offset":-1}}"#), validation("offset"));
    c.call(
        "tail limit -1",
        "logs.tail.v1",
        &format!(r#"{{"job_id":{id},"offset":0,"limit":-1}}"#),
        validation("limit"),
    );
    c.call("query limit -1", "dev.query_jobs.v1", r#"{"limit":-1}"#, validation("limit"));

    // Deeply nested payloads (10,000 levels): refused, whole or on the field.
    let deep_arrays = nested(10_000, "[", "]", "1");
    let deep_objects = nested(10_000, r#"{"a":"#, "}", "1");
    let refused_deep = |field: &'static str| either(rpc_error(-32700), either(validation(field), validation("params")));
    c.call(
        "payload 10,000 nested arrays",
        ENQUEUE,
        &job_with(&format!(r#""payload":{deep_arrays}"#)),
        refused_deep("payload"),
    );
    c.call(
        "payload 10,000 nested objects",
        ENQUEUE,
        &job_with(&format!(r#""payload":{deep_objects}"#)),
        refused_deep("payload"),
    );
    c.call("params 10,000 nested", "dev.get.v1", &deep_objects, refused_deep("params"));
    c.call(
        "exec.env 10,000 nested",
        ENQUEUE,
        &job_with(&format!(r#""exec":{{"command":"true","env":{deep_objects}}}"#)),
        refused_deep("exec.env"),
    );
    // A batch of one element that is no request: `[{-32600}]` as JSON-RPC 2.0 says.
    c.body("a body of 10,000 nested arrays", deep_arrays.as_bytes(), |r: &Response| {
        let answers = r.json();
        let one_invalid = answers.as_array().is_some_and(|a| a.len() == 1 && a[0]["error"]["code"] == -32600);
        one_invalid.then_some(()).ok_or_else(|| "want [-32600]".to_owned())
    });
    let shallow = nested(100, "[", "]", r#""deep""#);
    c.call("payload 100 levels deep is fine", ENQUEUE, &job_with(&format!(r#""payload":{shallow}"#)), accepted);

    // NUL and invalid UTF-8 escapes.
    for (name, params, field) in [
        (
            "subject_key with NUL",
            r#"{"job_type":"noop","queue":"default","subject_key":"a\u0000b"}"#.to_owned(),
            "subject_key",
        ),
        (
            "subject_key with ESC",
            r#"{"job_type":"noop","queue":"default","subject_key":"a\u001b[31m"}"#.into(),
            "subject_key",
        ),
        ("job_type with NUL", r#"{"job_type":"noop\u0000","queue":"default","subject_key":"s"}"#.into(), "job_type"),
        ("queue with NUL", r#"{"job_type":"noop","queue":"default\u0000","subject_key":"s"}"#.into(), "queue"),
        ("exec.command with NUL", job_with(r#""exec":{"command":"tr\u0000ue"}"#), "exec.command"),
        ("exec.args with NUL", job_with(r#""exec":{"command":"true","args":["a\u0000b"]}"#), "exec.args"),
        ("exec.env name with NUL", job_with(r#""exec":{"command":"true","env":{"A\u0000":"x"}}"#), "exec.env"),
        ("exec.env value with NUL", job_with(r#""exec":{"command":"true","env":{"A":"x\u0000"}}"#), "exec.env"),
        ("exec.env name with =", job_with(r#""exec":{"command":"true","env":{"A=B":"x"}}"#), "exec.env"),
        ("exec.cwd with NUL", job_with(r#""exec":{"command":"true","cwd":"/tmp\u0000"}"#), "exec.cwd"),
        ("event name with NUL", job_with(r#""conditions":{"wait_for_event":"e\u0000"}"#), "conditions.wait_for_event"),
        (
            "subject_key of 513 bytes",
            format!(r#"{{"job_type":"noop","queue":"default","subject_key":"{}"}}"#, "k".repeat(513)),
            "subject_key",
        ),
        ("tag of 129 chars", job_with(&format!(r#""tag":"{}""#, "é".repeat(129))), "tag"),
        ("payload over 1 MiB", job_with(&format!(r#""payload":"{}""#, "p".repeat(1024 * 1024))), "payload"),
    ] {
        c.call(name, ENQUEUE, &params, validation(field));
    }
    // Lone surrogates are JSON grammar but no Unicode: a parse error, or 4000.
    for (name, escaped) in [
        ("lone high surrogate", r"\ud800"),
        ("lone low surrogate", r"\udc00x"),
        ("high then a letter", r"\ud800\u0041"),
    ] {
        let params = format!(r#"{{"job_type":"noop","queue":"default","subject_key":"{escaped}"}}"#);
        c.call(
            name,
            ENQUEUE,
            &params,
            either(rpc_error(-32700), either(validation("subject_key"), validation("params"))),
        );
    }

    // Batches.
    let mut gets = Vec::new();
    for index in 0..10_000 {
        let job_id = if index % 2 == 0 { known.clone() } else { format!("00000000-0000-4000-8000-{index:012}") };
        gets.push(json!({"jsonrpc": "2.0", "id": index, "method": "dev.get.v1", "params": {"job_id": job_id}}));
    }
    let gets = Value::Array(gets).to_string();
    c.body("batch of 10,000 gets", gets.as_bytes(), |r: &Response| match r.json() {
        Value::Array(answers) => {
            let ids: BTreeSet<i64> = answers.iter().filter_map(|a| a["id"].as_i64()).collect();
            if answers.len() != 10_000 || ids.len() != 10_000 {
                return Err(format!("want 10,000 answers, one per id; got {} with {} ids", answers.len(), ids.len()));
            }
            let right = answers.iter().all(|a| {
                let even = a["id"].as_i64().unwrap() % 2 == 0;
                if even {
                    a["result"]["id"].is_string()
                } else {
                    a["error"]["code"] == 4001
                }
            });
            right.then_some(()).ok_or_else(|| "want results for the known job, 4001 for the others".into())
        }
        // Refusing a batch that large as a whole is fine too, with a contract code.
        single => ([-32600, 4000, 4003].iter().any(|code| single["error"]["code"] == *code))
            .then_some(())
            .ok_or_else(|| "want an array of answers or one refusal".to_owned()),
    });
    let bad_enqueues: Vec<Value> = (0..10_000)
        .map(|index| json!({"jsonrpc": "2.0", "id": index, "method": ENQUEUE, "params": {"job_type": "noop", "queue": "BAD QUEUE", "subject_key": "s"}}))
        .collect();
    c.body(
        "batch of 10,000 invalid enqueues",
        Value::Array(bad_enqueues).to_string().as_bytes(),
        |r: &Response| match r.json() {
            Value::Array(answers) if answers.len() == 10_000 => answers
                .iter()
                .all(|a| a["error"]["code"] == 4000 && a["error"]["data"]["field"] == "queue")
                .then_some(())
                .ok_or_else(|| "want 4000 on queue for each".into()),
            single => ([-32600, 4000, 4003].iter().any(|code| single["error"]["code"] == *code))
                .then_some(())
                .ok_or_else(|| "want 10,000 answers or one refusal".to_owned()),
        },
    );
    let mixed = format!(
        r#"[{{"jsonrpc":"2.0","id":1,"method":"dev.get.v1","params":{{"job_id":{id}}}}},1,{{"jsonrpc":"1.0","id":3,"method":"admin.stats.v1"}},{{"jsonrpc":"2.0","id":4,"method":"dev.nope.v1"}},[]]"#
    );
    c.body("mixed batch", mixed.as_bytes(), |r: &Response| {
        let answers = r.json();
        let codes: Vec<Value> =
            answers.as_array().map(|a| a.iter().map(|x| x["error"]["code"].clone()).collect()).unwrap_or_default();
        let want = [Value::Null, json!(-32600), json!(-32600), json!(-32601), json!(-32600)];
        (codes == want).then_some(()).ok_or_else(|| format!("want codes {want:?}, got {codes:?}"))
    });
    let jobs: Vec<Value> =
        (0..10_000).map(|i| json!({"job_type": "noop", "queue": "default", "subject_key": format!("b{i}")})).collect();
    c.call(
        "enqueue_batch of 10,000 jobs",
        "dev.enqueue_batch.v1",
        &json!({ "jobs": jobs }).to_string(),
        validation("jobs"),
    );

    // Bodies over 2 MiB: 413 with 4000 request_too_large.
    let too_large = |r: &Response| -> Verdict {
        let body = r.json();
        let ok =
            r.status == 413 && body["error"]["code"] == 4000 && body["error"]["data"]["kind"] == "request_too_large";
        ok.then_some(()).ok_or_else(|| "want 413 with 4000 request_too_large".into())
    };
    let mut oversize =
        call(ENQUEUE, &job_with(&format!(r#""payload":"{}""#, "x".repeat(2 * 1024 * 1024)))).into_bytes();
    oversize.truncate(2 * 1024 * 1024 + 1);
    c.body("a body of 2 MiB + 1", &oversize, too_large);
    let mut exactly = call("admin.stats.v1", "{}").into_bytes();
    exactly.resize(2 * 1024 * 1024, b' ');
    c.body("a body of exactly 2 MiB", &exactly, accepted);
    c.raw(
        "3 GiB declared, 10 bytes sent",
        format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 3221225472\r\nConnection: close\r\n\r\n0123456789", target.token).as_bytes(),
        too_large,
    );

    // Broken HTTP: no contract answer, but no crash and no 5xx.
    let token = target.token.clone();
    for (name, request) in [
        ("garbage request line", "GARBAGE\r\n\r\n".to_owned()),
        ("HTTP/9.9", "POST / HTTP/9.9\r\nHost: x\r\n\r\n".into()),
        ("content-length not a number", format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: abc\r\n\r\n{{}}")),
        ("content-length negative", format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: -1\r\n\r\n{{}}")),
        ("content-length past u64", format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 99999999999999999999999\r\n\r\n{{}}")),
        ("two content-lengths", format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\n{{}}")),
        ("a 1 MiB header", format!("POST / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}", "h".repeat(1024 * 1024))),
        ("10,000 headers", format!("POST / HTTP/1.1\r\nHost: x\r\n{}Content-Length: 2\r\n\r\n{{}}", "X-A: b\r\n".repeat(10_000))),
        ("no content-type", format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")),
        ("GET / with the token", format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")),
        ("websocket upgrade without the token", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".into()),
    ] {
        c.raw(name, request.as_bytes(), survives);
    }
    let mut high_bytes = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\nAuthorization: Bearer {token}").into_bytes();
    high_bytes.extend_from_slice(b"\xff\xfe\r\n\r\n{}");
    c.raw("a token with bytes past ASCII", &high_bytes, |r: &Response| {
        (r.status == 401 && r.json()["error"]["code"] == 4010).then_some(()).ok_or_else(|| "want 401 with 4010".into())
    });

    // What was there before is all still there.
    for (job_id, states) in &survivors {
        let response = target.rpc("dev.get.v1", json!({"job_id": job_id}));
        let state = response["result"]["state"].as_str().unwrap_or("(missing)").to_owned();
        if !states.contains(&state.as_str()) {
            c.violations.push(format!("job {job_id} lost or changed: {state}, want one of {states:?}: {response}"));
        }
    }
    let listed = target.rpc("dev.query_jobs.v1", json!({"filter": {"tag": "survivor"}, "limit": 200}));
    if listed["result"]["items"].as_array().map(Vec::len) != Some(4) {
        c.violations.push(format!("the 4 jobs tagged survivor are not all listed: {listed}"));
    }
    target.healthy().unwrap();
    eprintln!("hostile catalogue: {} cases tried, {} violations", c.tried, c.violations.len());
    assert!(c.tried >= 150, "the catalogue shrank: {} cases", c.tried);
    assert!(
        c.violations.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        c.violations.len(),
        c.tried,
        c.violations.join("\n")
    );
}

// ---- what the catalogue found broken ----------------------------------------------
//
// Cases of the catalogue that the daemon answers against the contract today, kept apart
// so that each failure is visible by name. Each is asserted the way API.md (JSON-RPC 2.0
// for the -326xx codes) says it should be answered.

fn check_cases(cases: impl FnOnce(&mut Catalogue)) {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let mut c = Catalogue { target: &target, tried: 0, violations: Vec::new() };
    cases(&mut c);
    eprintln!("{} cases tried, {} violations", c.tried, c.violations.len());
    assert!(
        c.violations.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        c.violations.len(),
        c.tried,
        c.violations.join("\n")
    );
}

/// The daemon answers a single HTTP call of its own methods itself and leaves batches (and
/// what is not such a call) to jsonrpsee: a call alone and the same call as a batch of one
/// get the same answer, whatever the id, the method and the params.
#[test]
fn a_call_alone_and_in_a_batch_of_one_get_the_same_answer() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let job = target.rpc("dev.enqueue.v1", json!({"job_type": "noop", "queue": "q", "subject_key": "s"}));
    let id = job["result"]["job_id"].clone();
    let done = target.rpc("dev.wait.v1", json!({"job_id": id, "timeout_ms": 30_000}));
    assert_eq!(done["result"]["state"], "DONE", "{done}");
    let calls = [
        ("dev.get.v1", json!({"job_id": id})),
        ("dev.wait.v1", json!({"job_id": id, "timeout_ms": 10})),
        ("dev.cancel.v1", json!({"job_id": id})),
        ("dev.query_jobs.v1", json!({"filter": {"queue": ["q"]}, "limit": 10})),
        ("dev.recurring.list.v1", json!({})),
        ("rpc.discover", json!({})),
        ("dev.get.v1", json!({"job_id": "not-an-id"})),
        ("dev.get.v1", json!({"job_id": id, "unknown": 1})),
        ("dev.get.v1", json!([id])),
        ("dev.get.v1", Value::Null),
        ("dev.enqueue.v1", json!({"job_type": "noop"})),
        ("dev.enqueue.v1", json!({"job_type": "noop", "queue": "q", "subject_key": "s", "priority": "high"})),
        ("dev.enqueue_batch.v1", json!({"jobs": []})),
        ("admin.stats.v1", json!({"unknown": true})),
        ("admin.ui_login.v1", json!({"unknown": 1})),
        ("logs.follow.v1", json!({"job_id": id})),
        ("no.such.method", json!({})),
    ];
    for (method, params) in calls {
        for id in [json!(7), json!(0), json!(u64::MAX), json!("seven"), json!("\"quoted\" \u{e9}"), Value::Null] {
            let call = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
            let alone = target.post(call.as_bytes());
            let batch = target.post(format!("[{call}]").as_bytes());
            assert_eq!((alone.status, batch.status), (200, 200), "{call}: {} / {}", alone.text(), batch.text());
            let alone = alone.json();
            assert!(alone.get("result").is_some() || alone.get("error").is_some(), "{call}: {alone}");
            assert_eq!(json!([alone]), batch.json(), "{call}");
        }
    }
}

/// JSON-RPC 2.0: valid JSON that is not a request object, or a request whose id is not a
/// string, number or null, is -32600 Invalid Request (with id null).
#[test]
fn valid_json_that_is_no_request_gets_invalid_request() {
    check_cases(|c| {
        c.body("a number", b"42", rpc_error(-32600));
        c.body("a string", br#""dev.get.v1""#, rpc_error(-32600));
        c.body("null", b"null", rpc_error(-32600));
        c.body("id an object", br#"{"jsonrpc":"2.0","id":{"a":1},"method":"admin.stats.v1"}"#, rpc_error(-32600));
        let deep_id =
            format!(r#"{{"jsonrpc":"2.0","id":{},"method":"admin.stats.v1"}}"#, nested(10_000, "[", "]", "1"));
        c.body("an id 10,000 levels deep", deep_id.as_bytes(), rpc_error(-32600));
    });
}

/// RFC 8259: JSON text is UTF-8. Bytes that are not are invalid JSON: -32700.
#[test]
fn invalid_utf8_in_a_body_is_a_parse_error() {
    check_cases(|c| {
        let enqueue_with = |bytes: &[u8]| {
            [&br#"{"jsonrpc":"2.0","id":1,"method":"dev.enqueue.v1","params":{"job_type":"noop","queue":"default","subject_key":"a"#[..], bytes, b"\"}}"].concat()
        };
        c.body("a raw 0xFF in a string", &enqueue_with(b"\xff"), rpc_error(-32700));
        c.body("an overlong NUL (C0 80) in a string", &enqueue_with(b"\xc0\x80"), rpc_error(-32700));
        c.body("a lone surrogate encoded raw (ED A0 80)", &enqueue_with(b"\xed\xa0\x80"), rpc_error(-32700));
        c.body(
            "invalid bytes in the method",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}",
            rpc_error(-32700),
        );
    });
}

/// API.md: `data.field` names the field as a dotted path.
#[test]
fn refusals_name_the_field_as_a_dotted_path() {
    check_cases(|c| {
        c.call("enqueue params an array", ENQUEUE, "[1,2]", validation("params"));
        c.call("enqueue params a string", ENQUEUE, r#""noop""#, validation("params"));
        c.call(
            "query created_after -1",
            "dev.query_jobs.v1",
            r#"{"filter":{"created_after":-1}}"#,
            validation("filter.created_after"),
        );
        c.call(
            "query created_after a string",
            "dev.query_jobs.v1",
            r#"{"filter":{"created_after":"x"}}"#,
            validation("filter.created_after"),
        );
        // 1e400 is JSON grammar but no f64: a parse error, or 4000 on the field; never
        // "params: must be an object" (they are one).
        c.call(
            "priority 1e400",
            ENQUEUE,
            &job_with(r#""priority":1e400"#),
            either(rpc_error(-32700), validation("priority")),
        );
        c.call(
            "payload 1e400",
            ENQUEUE,
            &job_with(r#""payload":{"x":1e400}"#),
            either(rpc_error(-32700), validation("payload")),
        );
    });
}

/// A client that announces a body and hangs up before sending it made the mistake: the
/// answer must not be HTTP 500 "Internal error".
#[test]
fn a_client_hanging_up_mid_body_is_not_an_internal_error() {
    check_cases(|c| {
        let token = c.target.token.clone();
        c.short(
            "body shorter than declared",
            format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\"").as_bytes(),
            |r: &Response| (r.status != 500 && r.json()["error"]["code"] != -32603).then_some(()).ok_or_else(|| "want no 500 / -32603".into()),
        );
    });
}

// ---- the keep-alive connection after a refusal --------------------------------------

#[test]
fn an_oversize_body_gets_413_and_the_keep_alive_connection_stays_usable() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let mut connection = Connection::open(&target.addr);
    let oversize = vec![b' '; 2 * 1024 * 1024 + 1];
    let _ = connection.send(&post_request(Some(&target.token), &oversize, true));
    let refused = connection.receive().expect("an answer to the oversize body");
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], 4000, "{}", refused.text());
    assert_eq!(refused.json()["error"]["data"]["kind"], "request_too_large", "{}", refused.text());
    // API.md: "... and the keep-alive connection stays usable".
    let next = connection
        .send(&post_request(Some(&target.token), call("admin.stats.v1", "{}").as_bytes(), true))
        .and_then(|_| connection.receive());
    match next {
        Ok(response) => assert!(
            response.status == 200 && response.json()["result"].is_object(),
            "the next call on the same connection: {} {}",
            response.status,
            response.text()
        ),
        Err(error) => panic!("the connection did not stay usable after the 413: {error}"),
    }
    target.healthy().unwrap();
}

#[test]
fn an_oversize_chunked_body_gets_the_contract_413() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    // No Content-Length: the size is only known once the body has been read.
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        target.token
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..33 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = target.exchange(&request);
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.json()["error"]["code"], 4000, "want 4000, got {}", response.text());
    assert_eq!(response.json()["error"]["data"]["kind"], "request_too_large", "{}", response.text());
    target.healthy().unwrap();
}

// ---- slow and idle clients ----------------------------------------------------------

/// Times one call that must be answered while others misbehave.
fn timed_call(target: &Target, slowest: &mut Duration) {
    let started = Instant::now();
    let response = target.rpc("admin.stats.v1", json!({}));
    assert!(response["result"].is_object(), "stats while others misbehave: {response}");
    target.healthy().unwrap();
    *slowest = (*slowest).max(started.elapsed());
}

#[test]
fn slow_loris_clients_do_not_block_others() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let dribble_for = Duration::from_secs(5);
    let mut lorises = Vec::new();
    for index in 0..24 {
        let addr = target.addr.clone();
        let token = target.token.clone();
        lorises.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            // Half dribble their headers, half send headers at once and dribble the body.
            let body = call("admin.stats.v1", "{}");
            let request = post_request(Some(&token), body.as_bytes(), false);
            let split = if index % 2 == 0 { 0 } else { request.len() - body.len() };
            if stream.write_all(&request[..split]).is_err() {
                return 0;
            }
            let started = Instant::now();
            let mut sent = 0;
            for byte in &request[split..] {
                if started.elapsed() >= dribble_for || stream.write_all(&[*byte]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            sent
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (mut calls, mut slowest) = (0, Duration::ZERO);
    while started.elapsed() < dribble_for {
        timed_call(&target, &mut slowest);
        calls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let dribbled: usize = lorises.into_iter().map(|loris| loris.join().unwrap()).sum();
    assert!(dribbled >= 24 * 3, "the slow clients were cut off early ({dribbled} bytes): the test proves nothing");
    assert!(calls >= 10, "only {calls} calls in {dribble_for:?} beside the slow clients");
    // Under the 5 s the slow clients dribble for: a call stuck behind them would take that
    // long; a loaded CI machine may still take a few seconds for an honest one.
    assert!(slowest < Duration::from_secs(4), "a call took {slowest:?} beside the slow clients");
    target.healthy().unwrap();
}

#[test]
fn a_thousand_idle_connections_do_not_stop_the_daemon() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let fds_before = target.open_fds();
    let mut idle = Vec::new();
    for index in 0..1_000 {
        let mut stream = TcpStream::connect(&target.addr).expect("connect while others idle");
        if index % 5 == 0 {
            // Some begin a request and never finish it.
            let _ = stream.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n");
        }
        idle.push(stream);
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        timed_call(&target, &mut slowest);
    }
    assert!(slowest < Duration::from_secs(4), "a call took {slowest:?} beside 1,000 idle connections");
    let fds_held = target.open_fds();
    drop(idle);
    // Once the clients hang up, the daemon lets go of their sockets.
    let started = Instant::now();
    while target.open_fds() > fds_before + 50 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon still holds {} fds 10 s after 1,000 clients left (before: {fds_before}, while idle: {fds_held})",
            target.open_fds()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    target.healthy().unwrap();
}

// ---- SQL metacharacters -------------------------------------------------------------

#[test]
fn sql_metacharacters_round_trip_verbatim() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let subject = "'; DROP TABLE jobs; --";
    let tag = "' OR '1'='1";
    let group = "\"); DELETE FROM jobs WHERE 1=1; --";
    let trace = "%_\\' UNION SELECT * FROM sqlite_master --";
    let payload = json!({"q": "'); DROP TABLE jobs;--", "nul": "a\u{0}b", "like": "%_"});
    let bystander = target.rpc(
        ENQUEUE,
        json!({"job_type": "noop", "queue": "default", "subject_key": "bystander", "tag": "plain",
               "schedule": {"delay_ms": 3_600_000}}),
    );
    let bystander = bystander["result"]["job_id"].as_str().expect("bystander enqueued").to_owned();
    let enqueued = target.rpc(
        ENQUEUE,
        json!({"job_type": "noop", "queue": "default", "subject_key": subject, "tag": tag, "chain_group_id": group,
               "trace_id": trace, "payload": payload, "schedule": {"delay_ms": 3_600_000}}),
    );
    let id = enqueued["result"]["job_id"].as_str().unwrap_or_else(|| panic!("enqueue: {enqueued}")).to_owned();
    let job = target.rpc("dev.get.v1", json!({"job_id": id}))["result"].clone();
    assert_eq!(job["subject_key"], subject);
    assert_eq!(job["tag"], tag);
    assert_eq!(job["chain_group_id"], group);
    assert_eq!(job["trace_id"], trace);
    assert_eq!(job["payload"], payload);
    let ids = |filter: Value| -> Vec<String> {
        let listed = target.rpc("dev.query_jobs.v1", json!({ "filter": filter, "limit": 200 }));
        let items = listed["result"]["items"].as_array().unwrap_or_else(|| panic!("query: {listed}")).clone();
        items.iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(json!({"tag": tag})), std::slice::from_ref(&id));
    assert_eq!(ids(json!({"chain_group_id": group})), std::slice::from_ref(&id));
    assert_eq!(ids(json!({"subject_key_prefix": "'; DROP"})), std::slice::from_ref(&id));
    // A prefix is bytes, not a LIKE pattern.
    assert_eq!(ids(json!({"subject_key_prefix": "%"})), Vec::<String>::new());
    assert_eq!(ids(json!({"subject_key_prefix": "_"})), Vec::<String>::new());
    assert_eq!(ids(json!({"tag": "%"})), Vec::<String>::new());
    let cancelled = target.rpc("dev.cancel.v1", json!({"tag": tag}));
    assert_eq!(cancelled["result"]["cancelled_count"], 1, "{cancelled}");
    let bystander = target.rpc("dev.get.v1", json!({"job_id": bystander}));
    assert_eq!(bystander["result"]["state"], "SCHEDULED", "{bystander}");
    assert_eq!(ids(json!({})).len(), 2, "both jobs are still there");
    target.healthy().unwrap();
}

// ---- security -----------------------------------------------------------------------

#[test]
fn tcp_requires_the_token_and_the_socket_does_not() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    let body = call("admin.stats.v1", "{}");
    let mut wrong_last = target.token.clone();
    let last = if wrong_last.ends_with('0') { "1" } else { "0" };
    wrong_last.replace_range(wrong_last.len() - 1.., last);
    let refusals = [
        ("no header", None),
        ("wrong token", Some("Bearer nope".to_owned())),
        ("last character wrong", Some(format!("Bearer {wrong_last}"))),
        ("a prefix of the token", Some(format!("Bearer {}", &target.token[..target.token.len() - 1]))),
        ("the token and more", Some(format!("Bearer {}0", target.token))),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("no scheme", Some(target.token.clone())),
        ("basic auth", Some(format!("Basic {}", target.token))),
    ];
    for (name, authorization) in refusals {
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let response = target.exchange(request.as_bytes());
        assert_eq!(response.status, 401, "{name}: {}", response.text());
        assert_eq!(response.json()["error"]["code"], 4010, "{name}: {}", response.text());
    }
    let granted = target.post(body.as_bytes());
    assert!(granted.status == 200 && granted.json()["result"].is_object(), "{}", granted.text());
    let health = target.exchange(HEALTH_REQUEST);
    assert_eq!(health.status, 200, "/health needs no token");
    // The Unix socket is guarded by its file mode, not the token.
    let socket = UnixStream::connect(home.path().join("semantica.sock")).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (status, answer) = raw_http(socket, &post(&body, None));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn token_and_socket_files_are_private_to_the_user() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(home.path());
    for file in ["token", "semantica.sock"] {
        let mode = std::fs::metadata(home.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
}

/// The daemon's files others could read: job payloads and `exec.env` values (secrets) are
/// in the database, job output in the logs.
#[test]
fn the_data_directory_is_private_to_the_user() {
    let parent = tempfile::tempdir().unwrap();
    // A directory the daemon creates itself (a temp dir is already 0700).
    let home = parent.path().join("semantica-home");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = Daemon::start(&home);
    let target = Target::of(&daemon, &home);
    let job = target.rpc(ENQUEUE, json!({"job_type": "echo", "queue": "default", "subject_key": "s", "payload": "hi"}));
    let id = job["result"]["job_id"].as_str().unwrap().to_owned();
    let client = daemon.client();
    runtime().block_on(wait_until(&client, &json!(id), "the echo job", |job| job["state"] == "DONE"));
    let home_mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
    let mut readable = Vec::new();
    for path in [home.join("jobs.db"), home.join("logs").join(format!("{id}.log")), home.join("logs")] {
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if metadata.permissions().mode() & 0o077 != 0 {
            readable.push(format!("{} ({:o})", path.display(), metadata.permissions().mode() & 0o777));
        }
    }
    assert!(
        home_mode & 0o077 == 0 || readable.is_empty(),
        "the data directory is {home_mode:o} and other users can read: {readable:?}"
    );
}

/// Runs `semantica serve` on `home` with stderr captured to a file.
struct LoggedDaemon {
    child: Option<Child>,
    log: PathBuf,
}

impl LoggedDaemon {
    fn spawn(home: &Path, env: &[(&str, &str)]) -> LoggedDaemon {
        std::fs::create_dir_all(home).unwrap();
        let log = home.with_extension("stderr");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .env("SEMANTICA_HOME", home)
            .env("SEMANTICA_RPC_ADDR", "127.0.0.1:0")
            .env("SEMANTICA_WORKERS", "2")
            .env_remove("SEMANTICA_TOKEN")
            .env_remove("SEMANTICA_DB_PATH")
            .env_remove("SEMANTICA_SOCKET")
            .env_remove("SEMANTICA_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start semantica serve");
        LoggedDaemon { child: Some(child), log }
    }

    /// Waits for `daemon.json`; `None` if the daemon exited first.
    fn wait_ready(&mut self, home: &Path) -> Option<Target> {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(home.join("daemon.json")) {
                let info: Value = serde_json::from_str(&text).unwrap();
                let token = std::fs::read_to_string(home.join("token")).unwrap().trim().to_owned();
                let addr = info["rpc_addr"].as_str().unwrap().to_owned();
                return Some(Target { addr, token, pid: info["pid"].as_i64().unwrap() as i32 });
            }
            if self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                return None;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no daemon.json after 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 30 s for the process to end by itself.
    fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, wait, and everything the daemon wrote to stderr.
    fn stop(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        child.wait().unwrap();
        self.stderr()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_token_file_others_can_read_is_refused_at_start() {
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let parent = tempfile::tempdir().unwrap();
        let home = parent.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let token = home.join("token");
        std::fs::write(&token, "0123456789abcdef0123456789abcdef").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut daemon = LoggedDaemon::spawn(&home, &[]);
        let status = daemon.wait_exit().unwrap_or_else(|| panic!("mode {mode:o}: the daemon started anyway"));
        let stderr = daemon.stderr();
        assert!(!status.success(), "mode {mode:o}: exit {status}");
        assert!(
            stderr.contains("chmod 600") && stderr.contains(&token.display().to_string()),
            "mode {mode:o}: the message should name the file and the fix: {stderr}"
        );
        assert!(!home.join("daemon.json").exists(), "mode {mode:o}: it must not have served");
    }
}

#[test]
fn listening_beyond_loopback_is_warned_about() {
    let parent = tempfile::tempdir().unwrap();
    let home = parent.path().join("home");
    let mut daemon = LoggedDaemon::spawn(&home, &[("SEMANTICA_RPC_ADDR", "0.0.0.0:0")]);
    daemon.wait_ready(&home).expect("the daemon starts on 0.0.0.0 when told to");
    let stderr = daemon.stop();
    assert!(stderr.contains("beyond loopback"), "no warning about 0.0.0.0: {stderr}");
    let mut local = LoggedDaemon::spawn(&parent.path().join("local"), &[]);
    local.wait_ready(&parent.path().join("local")).unwrap();
    let stderr = local.stop();
    assert!(!stderr.contains("beyond loopback"), "a warning on loopback: {stderr}");
}

/// Enqueues a subprocess job and returns its log once it has ended.
fn run_to_end(target: &Target, exec: Value) -> (Value, String) {
    let enqueued =
        target.rpc(ENQUEUE, json!({"job_type": "exec", "queue": "default", "subject_key": "env", "exec": exec}));
    let id = enqueued["result"]["job_id"].as_str().unwrap_or_else(|| panic!("enqueue: {enqueued}")).to_owned();
    let job = target.rpc("dev.wait.v1", json!({"job_id": id, "timeout_ms": 30_000}))["result"].clone();
    assert!(job["state"].is_string(), "the job did not end: {job}");
    let tail = target.rpc("logs.tail.v1", json!({"job_id": id, "offset": 0, "limit": 1_048_576}));
    (job, tail["result"]["chunk"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn a_subprocess_sees_only_the_allowlist_its_env_and_semantica_variables() {
    let home = tempfile::tempdir().unwrap();
    let daemon =
        Daemon::start_with(home.path(), &[("MY_SECRET", "x-daemon-secret"), ("AWS_SECRET_ACCESS_KEY", "x-aws")]);
    let target = Target::of(&daemon, home.path());
    let (job, output) = run_to_end(&target, json!({"command": "env", "env": {"JOB_VAR": "y"}}));
    assert_eq!(job["state"], "DONE", "{job}\n{output}");
    let allowed: BTreeSet<&str> = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "JOB_VAR"]
        .into_iter()
        .chain(["SEMANTICA_JOB_ID", "SEMANTICA_RESULT_PATH", "SEMANTICA_ARTIFACT_DIR"])
        // API.md v1.1 "Trace context": the attempt's span, set by the daemon.
        .chain(["TRACEPARENT"])
        .collect();
    let names: BTreeSet<&str> = output.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).collect();
    let extra: Vec<&&str> = names.difference(&allowed).collect();
    assert!(extra.is_empty(), "the job saw variables beyond the allowlist: {extra:?}\n{output}");
    assert!(output.lines().any(|line| line == "JOB_VAR=y"), "the job's own env is missing:\n{output}");
    assert!(names.contains("SEMANTICA_JOB_ID"), "{output}");
    assert!(!output.contains("x-daemon-secret") && !output.contains("x-aws"), "a daemon secret leaked:\n{output}");
}

#[test]
fn job_ids_cannot_walk_out_of_the_log_directory() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let target = Target::of(&daemon, home.path());
    for hostile in [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "00000000-0000-4000-8000-000000000000/../../../etc/passwd",
        "00000000-0000-4000-8000-000000000000\u{0}",
        "%2e%2e%2fetc%2fpasswd",
        "..\\..\\etc\\passwd",
    ] {
        for (method, params) in [
            ("logs.tail.v1", json!({"job_id": hostile, "offset": 0})),
            ("dev.get.v1", json!({"job_id": hostile})),
            ("dev.cancel.v1", json!({"job_id": hostile})),
            ("dev.wait.v1", json!({"job_id": hostile, "timeout_ms": 1})),
        ] {
            let response = target.rpc(method, params);
            assert_eq!(response["error"]["code"], 4000, "{method} {hostile:?}: {response}");
            assert_eq!(response["error"]["data"]["field"], "job_id", "{method} {hostile:?}: {response}");
        }
    }
    let unknown = target.rpc("logs.tail.v1", json!({"job_id": "00000000-0000-4000-8000-000000000000", "offset": 0}));
    assert_eq!(unknown["error"]["code"], 4001, "{unknown}");
}

/// Secrets handed to jobs in `exec.env`, checked against what the daemon itself logged.
fn check_no_secret_in_daemon_log(env: &[(&str, &str)]) {
    let parent = tempfile::tempdir().unwrap();
    let home = parent.path().join("home");
    let secret = "s3cr3t-9f8e7d6c5b4a";
    let mut daemon = LoggedDaemon::spawn(&home, env);
    let target = daemon.wait_ready(&home).expect("the daemon starts");
    // A job that runs, one that cannot start, one refused by validation, one by type.
    let (done, _) = run_to_end(&target, json!({"command": "true", "env": {"API_TOKEN": secret}}));
    assert_eq!(done["state"], "DONE", "{done}");
    let (failed, _) =
        run_to_end(&target, json!({"command": "/nonexistent/semantica-test", "env": {"API_TOKEN": secret}}));
    assert_eq!(failed["state"], "FAILED", "{failed}");
    let refused = target.rpc(
        ENQUEUE,
        json!({"job_type": "exec", "queue": "default", "subject_key": "s", "exec": {"command": "true", "env": {"API_TOKEN": secret, "BAD=NAME": secret}}}),
    );
    assert_eq!(refused["error"]["code"], 4000, "{refused}");
    assert!(!refused.to_string().contains(secret), "the refusal echoes the secret: {refused}");
    let wrong_type = target.rpc(
        ENQUEUE,
        json!({"job_type": "exec", "queue": "default", "subject_key": "s", "exec": {"command": "true", "env": {"API_TOKEN": secret, "N": 5}}}),
    );
    assert_eq!(wrong_type["error"]["code"], 4000, "{wrong_type}");
    let stderr = daemon.stop();
    assert!(stderr.contains("job started"), "the daemon's log was not captured: {stderr}");
    assert!(!stderr.contains(secret), "the daemon logged a secret from exec.env:\n{stderr}");
}

#[test]
fn secrets_in_exec_env_never_reach_the_daemon_log() {
    check_no_secret_in_daemon_log(&[]);
    check_no_secret_in_daemon_log(&[("SEMANTICA_LOG_FORMAT", "json")]);
}

/// A user who turns on debug logging to chase a problem must not spill job secrets.
#[test]
fn secrets_in_exec_env_stay_out_of_debug_logs() {
    check_no_secret_in_daemon_log(&[("RUST_LOG", "debug")]);
}
