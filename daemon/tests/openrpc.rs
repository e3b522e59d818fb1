//! `rpc.discover` publishes the document the wire types generate (`docs/openrpc.json`),
//! and every answer of the real daemon, to every method, validates against the schema
//! it publishes; so do a follow subscription's notifications and error answers. Every
//! call's params are built from the typed params and validate against their schema too.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use semantica_client::openrpc;
use semantica_client::types::*;
use serde_json::{json, Value};

/// Judges instances against the schemas of one document.
struct Schemas {
    document: Value,
    called: BTreeSet<String>,
}

impl Schemas {
    fn check(&self, schema: &Value, instance: &Value, what: &str) {
        let standalone = openrpc::standalone_schema(&self.document, schema);
        let validator = jsonschema::draft202012::new(&standalone).expect("a published schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{what} does not validate against its published schema: {errors:?}\n{instance}");
    }

    fn method(&self, name: &str) -> &Value {
        openrpc::method(&self.document, name).unwrap_or_else(|| panic!("{name} is published"))
    }

    /// Calls `name` with typed params; the params and the answer must validate.
    async fn call<P: serde::Serialize>(&mut self, client: &Client, name: &str, params_typed: P) -> Value {
        let sent = serde_json::to_value(&params_typed).unwrap();
        self.check(&self.method(name)["x-params"].clone(), &sent, &format!("the params of {name}"));
        let answer = client
            .call(name, params(sent.clone()))
            .await
            .unwrap_or_else(|error| panic!("{name} {sent} refused: {error}"));
        self.check(&self.method(name)["result"]["schema"].clone(), &answer, &format!("the answer of {name}"));
        self.called.insert(name.to_owned());
        answer
    }

    /// Calls `name` expecting an error, which must validate as the published error object.
    async fn call_error(&self, client: &Client, name: &str, sent: Value) -> (i32, Value) {
        match client.call(name, params(sent)).await {
            Err(ClientError::Rpc(error)) => {
                let (code, message, data) = (error.code, error.message, error.data);
                let error = match data {
                    Value::Null => json!({"code": code, "message": message}),
                    data => json!({"code": code, "message": message, "data": data}),
                };
                self.check(&json!({"$ref": "#/components/schemas/Error"}), &error, &format!("the error of {name}"));
                (code, error)
            }
            other => panic!("{name}: expected an error, got {other:?}"),
        }
    }
}

fn job(subject: &str) -> EnqueueParams {
    EnqueueParams::new("noop", "default", subject)
}

#[test]
fn rpc_discover_serves_the_committed_document() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    let served = runtime().block_on(client.call("rpc.discover", params(json!({})))).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openrpc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed, "rpc.discover and docs/openrpc.json differ");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(served["openrpc"], "1.3.2");
}

#[test]
fn every_answer_validates_against_the_published_schema() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let document = client.call("rpc.discover", params(json!({}))).await.unwrap();
        let mut s = Schemas { document, called: BTreeSet::new() };
        s.call(&client, "rpc.discover", NoParams {}).await;
        // The checker has teeth: a view without its id, or with a state the contract lacks, is refused.
        let bad = json!({"timed_out": true, "job": {"state": "LOST"}});
        let standalone = openrpc::standalone_schema(&s.document, &s.method("dev.wait.v1")["result"]["schema"]);
        assert!(!jsonschema::draft202012::new(&standalone).unwrap().is_valid(&bad));

        // Jobs in every shape: a subprocess with output, an echo, a failing one, a
        // scheduled one waiting for an event, a batch.
        let mut shell = EnqueueParams::new("sh", "build", "src/lib.rs");
        shell.exec = Some(Exec {
            command: "sh".into(),
            args: vec!["-c".into(), "echo out; echo err >&2; echo '{\"ok\":1}' > \"$SEMANTICA_RESULT_PATH\"; echo a > \"$SEMANTICA_ARTIFACT_DIR/a.txt\"".into()],
            env: [("A".to_owned(), "b".to_owned())].into(),
            cwd: None,
        });
        shell.max_attempts = Some(2);
        shell.backoff = Some(Backoff { base_ms: Some(10), factor: Some(2.0), max_ms: Some(100), jitter: Some(0.0) });
        shell.timeout_ms = Some(30_000);
        shell.tag = Some("t1".into());
        shell.chain_group_id = Some("g1".into());
        let shell = s.call(&client, "dev.enqueue.v1", shell).await;
        let shell_id = shell["job_id"].as_str().unwrap().to_owned();

        let mut echo = EnqueueParams::new("echo", "default", "echo");
        echo.payload = Some(json!({"hello": ["world", 1, null]}));
        echo.priority = Some(-3);
        echo.trace_id = Some("0123456789abcdef0123456789abcdef".into());
        let echo = s.call(&client, "dev.enqueue.v1", echo).await;

        let mut failing = EnqueueParams::new("fail", "default", "failing");
        failing.parent_job_id = Some(echo["job_id"].as_str().unwrap().to_owned());
        let failing = s.call(&client, "dev.enqueue.v1", failing).await;

        let mut waiting = EnqueueParams::new("noop", "later", "waiting");
        waiting.schedule = Some(Schedule { at: None, delay_ms: Some(600_000) });
        waiting.conditions =
            Some(Conditions { wait_for_idle: Some(false), require_charging: None, wait_for_event: Some("ev".into()) });
        waiting.ttl_ms = Some(3_600_000);
        waiting.deadline = Some(4_000_000_000_000);
        waiting.tag = Some("later".into());
        let waiting = s.call(&client, "dev.enqueue.v1", waiting).await;
        assert_eq!(waiting["state"], "SCHEDULED");

        let batch = EnqueueBatchParams { jobs: (0..5).map(|i| job(&format!("batch-{i}"))).collect() };
        let batch = s.call(&client, "dev.enqueue_batch.v1", batch).await;
        assert_eq!(batch["results"].as_array().unwrap().len(), 5);

        // Ended, and timed out.
        let wait = |id: &str, timeout_ms| WaitParams { job_id: id.to_owned(), timeout_ms };
        let ended = s.call(&client, "dev.wait.v1", wait(&shell_id, 30_000)).await;
        assert_eq!(ended["state"], "DONE", "{ended}");
        assert_eq!(ended["artifacts"][0]["name"], "a.txt");
        s.call(&client, "dev.wait.v1", wait(failing["job_id"].as_str().unwrap(), 30_000)).await;
        let timed_out = s.call(&client, "dev.wait.v1", wait(waiting["job_id"].as_str().unwrap(), 10)).await;
        assert_eq!(timed_out["timed_out"], true);
        s.call(&client, "dev.get.v1", JobIdParams { job_id: echo["job_id"].as_str().unwrap().to_owned() }).await;

        // Pages, and the filter in every key.
        let first = s.call(&client, "dev.query_jobs.v1", QueryJobsParams { limit: Some(2), ..Default::default() }).await;
        let cursor = first["next_cursor"].as_str().expect("more than one page").to_owned();
        let query = QueryJobsParams {
            filter: Some(JobFilter {
                state: Some(vec![JobState::Done, JobState::Queued]),
                queue: Some(vec!["default".into(), "build".into()]),
                job_type: None,
                tag: None,
                chain_group_id: None,
                subject_key_prefix: Some("batch".into()),
                created_after: Some(1),
            }),
            sort: Some(Sort::Desc),
            limit: Some(200),
            cursor: Some(cursor),
        };
        s.call(&client, "dev.query_jobs.v1", query).await;
        let by_labels = JobFilter {
            job_type: Some("sh".into()),
            tag: Some("t1".into()),
            chain_group_id: Some("g1".into()),
            ..Default::default()
        };
        let labelled =
            s.call(&client, "dev.query_jobs.v1", QueryJobsParams { filter: Some(by_labels), ..Default::default() }).await;
        assert_eq!(labelled["items"].as_array().unwrap().len(), 1);

        s.call(&client, "dev.event.v1", NameParams { name: "nobody-waits".into() }).await;
        let tail = LogsTailParams { job_id: shell_id.clone(), offset: 0, limit: Some(4096) };
        let tail = s.call(&client, "logs.tail.v1", tail).await;
        assert_eq!(tail["eof"], true);
        follow_validates(&mut s, &daemon, &shell_id).await;

        // Queue controls, stats while one is paused, maintenance.
        s.call(&client, "admin.queue.pause.v1", QueueParams { queue: "paused-q".into() }).await;
        let stats = s.call(&client, "admin.stats.v1", NoParams {}).await;
        assert!(stats["queues"].as_array().unwrap().iter().any(|q| q["name"] == "paused-q" && q["paused"] == true));
        s.call(&client, "admin.queue.resume.v1", QueueParams { queue: "paused-q".into() }).await;
        s.call(&client, "admin.maintenance.v1", MaintenanceParams { force_vacuum: Some(true) }).await;

        // Cancel, then retry by id and by filter.
        let cancelled = s.call(&client, "dev.cancel.v1", CancelParams { tag: Some("later".into()), ..Default::default() }).await;
        assert_eq!(cancelled["cancelled_count"], 1);
        let by_id = RetryParams { job_id: Some(waiting["job_id"].as_str().unwrap().to_owned()), ..Default::default() };
        s.call(&client, "dev.retry.v1", by_id).await;
        let by_filter = RetryParams {
            filter: Some(JobFilter { state: Some(vec![JobState::Failed]), ..Default::default() }),
            limit: Some(10),
            ..Default::default()
        };
        let retried = s.call(&client, "dev.retry.v1", by_filter).await;
        assert_eq!(retried["results"].as_array().unwrap().len(), 1, "{retried}");
        let retry_id = retried["results"][0]["job_id"].as_str().unwrap().to_owned();
        let view = s.call(&client, "dev.get.v1", JobIdParams { job_id: retry_id }).await;
        assert_eq!(view["retry_of"], failing["job_id"]);

        // Recurring jobs, with a job in every field a recurring job may hold.
        let mut recurring_job = EnqueueParams::new("echo", "cron", "nightly");
        recurring_job.payload = Some(json!({"n": 1}));
        recurring_job.exec = Some(Exec { command: "true".into(), ..Default::default() });
        recurring_job.backoff = Some(Backoff { base_ms: Some(5), ..Default::default() });
        recurring_job.conditions = Some(Conditions { wait_for_idle: Some(true), ..Default::default() });
        recurring_job.tag = Some("nightly".into());
        let set = RecurringSetParams {
            name: "nightly".into(),
            cron: "0 3 * * *".into(),
            timezone: Some("Europe/Paris".into()),
            job: recurring_job,
        };
        s.call(&client, "dev.recurring.set.v1", set).await;
        let list = s.call(&client, "dev.recurring.list.v1", NoParams {}).await;
        assert_eq!(list["items"][0]["job"]["exec"]["command"], "true");
        s.call(&client, "dev.recurring.delete.v1", NameParams { name: "nightly".into() }).await;
        s.call(&client, "admin.reload.v1", NoParams {}).await;
        let login = s.call(&client, "admin.ui_login.v1", NoParams {}).await;
        assert!(login["url"].as_str().unwrap().starts_with(&format!("http://{}/ui/login?code=", daemon.rpc_addr)));

        // Errors validate as the published error object.
        let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(s.call_error(&client, "dev.get.v1", json!({"job_id": unknown})).await.0, 4001);
        let (code, error) = s.call_error(&client, "dev.enqueue.v1", json!({"job_type": "noop", "queue": "q", "subject_key": "s", "backoff": {"factor": "2"}})).await;
        assert_eq!((code, error["data"]["field"].as_str()), (4000, Some("backoff.factor")));
        let (code, error) = s.call_error(&client, "dev.cancel.v1", json!({"job_id": shell_id})).await;
        assert_eq!((code, error["data"]["state"].as_str()), (4002, Some("DONE")));
        let (code, error) =
            s.call_error(&client, "dev.enqueue_batch.v1", json!({"jobs": [{"job_type": "noop", "queue": "q", "subject_key": "s"}, {"job_type": 1}]})).await;
        assert_eq!((code, error["data"]["index"].as_u64()), (4000, Some(1)));
        // jsonrpsee's own answer to an unknown method has the contract's shape too.
        let (code, error) = s.call_error(&client, "dev.nothing.v1", json!({})).await;
        assert_eq!((code, error["data"]["kind"].as_str()), (-32601, Some("method_not_found")), "{error}");
        assert!(error["data"]["details"].is_string(), "{error}");

        // A refusal before jsonrpsee (a wrong token) has the same error object.
        let stream = std::net::TcpStream::connect(&daemon.rpc_addr).unwrap();
        let request = post(r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{}}"#, Some("wrong"));
        let (status, body) = raw_http(stream, &request);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, body["error"]["code"].as_i64()), (401, Some(4010)));
        s.check(&json!({"$ref": "#/components/schemas/Error"}), &body["error"], "the 401 answer");

        // A subscription over plain HTTP: the contract's shape, not jsonrpsee's -32603.
        let stream = std::net::TcpStream::connect(&daemon.rpc_addr).unwrap();
        let follow = json!({"jsonrpc": "2.0", "id": 1, "method": "logs.follow.v1", "params": {"job_id": shell_id}});
        let (_, body) = raw_http(stream, &post(&follow.to_string(), Some(&daemon.token)));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((body["error"]["code"].as_i64(), body["error"]["data"]["kind"].as_str()), (Some(-32600), Some("websocket_required")), "{body}");
        s.check(&json!({"$ref": "#/components/schemas/Error"}), &body["error"], "a follow over HTTP");

        let published: BTreeSet<String> = openrpc::METHODS.iter().map(|name| name.to_string()).collect();
        assert_eq!(s.called, published, "every published method is called");
    });
}

/// `logs.follow.v1` over WebSocket: every notification validates against the item schema.
async fn follow_validates(s: &mut Schemas, daemon: &Daemon, job_id: &str) {
    use jsonrpsee::core::client::SubscriptionClientT;
    use jsonrpsee_ws_client::{HeaderMap, HeaderValue, WsClientBuilder};
    let method = s.method("logs.follow.v1").clone();
    let sent = serde_json::to_value(LogsFollowParams { job_id: job_id.to_owned(), offset: 0 }).unwrap();
    s.check(&method["x-params"], &sent, "the params of logs.follow.v1");
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {}", daemon.token)).unwrap());
    let ws = WsClientBuilder::default().set_headers(headers).build(format!("ws://{}", daemon.rpc_addr)).await.unwrap();
    let mut follow_params = jsonrpsee::core::params::ObjectParams::new();
    for (key, value) in sent.as_object().unwrap() {
        follow_params.insert(key, value.clone()).unwrap();
    }
    let mut follow =
        ws.subscribe::<Value, _>("logs.follow.v1", follow_params, openrpc::FOLLOW_UNSUBSCRIBE).await.unwrap();
    let mut text = String::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), follow.next()).await.expect("a chunk or the end");
        let item = item.expect("the stream ends with eof").unwrap();
        s.check(&method["x-subscription"]["item"], &item, "a logs.follow.v1 notification");
        text.push_str(item["chunk"].as_str().unwrap());
        if item["eof"] == true {
            break;
        }
    }
    assert_eq!(text, "out\nerr\n");
    s.called.insert("logs.follow.v1".to_owned());
}
