//! The OpenRPC 1.3 document of the daemon (`rpc.discover`, `docs/openrpc.json`),
//! generated from [`crate::types`].
//!
//! Each method's params are listed by name (`paramStructure: "by-name"`), one content
//! descriptor per field of its params type; the whole params object is also published
//! (`x-params`, a `$ref` into `components.schemas`, which keeps `additionalProperties:
//! false`). Every schema is draft 2020-12 and refers to others as
//! `#/components/schemas/<Type>`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::types::*;

/// The OpenRPC version the document follows.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// Where schemas live in the document.
const SCHEMAS_POINTER: &str = "/components/schemas";

/// The method a `logs.follow.v1` subscription's notifications carry.
pub const FOLLOW_NOTIFICATION: &str = "logs.chunk";
/// The method that ends a `logs.follow.v1` subscription early.
pub const FOLLOW_UNSUBSCRIBE: &str = "logs.unfollow.v1";

/// Every method the document describes, in its order.
pub const METHODS: [&str; 20] = [
    "dev.enqueue.v1",
    "dev.enqueue_batch.v1",
    "dev.cancel.v1",
    "dev.get.v1",
    "dev.wait.v1",
    "dev.query_jobs.v1",
    "dev.event.v1",
    "logs.tail.v1",
    "logs.follow.v1",
    "admin.stats.v1",
    "admin.maintenance.v1",
    "admin.queue.pause.v1",
    "admin.queue.resume.v1",
    "dev.retry.v1",
    "dev.recurring.set.v1",
    "dev.recurring.delete.v1",
    "dev.recurring.list.v1",
    "admin.reload.v1",
    "admin.ui_login.v1",
    "rpc.discover",
];

struct Builder {
    generator: SchemaGenerator,
    methods: Vec<Value>,
}

impl Builder {
    fn method<P: JsonSchema, R: JsonSchema>(&mut self, name: &str, summary: &str, result_name: &str) {
        let result = self.generator.subschema_for::<R>().to_value();
        let params = self.params::<P>();
        self.push(name, summary, params, json!({ "name": result_name, "schema": result }));
    }

    /// The params of `P` as by-name content descriptors, and `P`'s own schema.
    fn params<P: JsonSchema>(&mut self) -> (Vec<Value>, Value) {
        let reference = self.generator.subschema_for::<P>().to_value();
        let pointer = reference["$ref"].as_str().expect("params types are named").trim_start_matches('#').to_owned();
        let name = pointer.rsplit('/').next().expect("a pointer has a last part").to_owned();
        let definition = self.generator.definitions().get(&name).cloned().expect("a named type has a definition");
        let required: Vec<&str> =
            definition["required"].as_array().map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        let descriptors = definition["properties"]
            .as_object()
            .map(|properties| {
                properties
                    .iter()
                    .map(|(key, schema)| {
                        let mut descriptor = json!({
                            "name": key,
                            "required": required.contains(&key.as_str()),
                            "schema": without_description(schema),
                        });
                        if let Some(description) = schema.get("description") {
                            descriptor["description"] = description.clone();
                        }
                        descriptor
                    })
                    .collect()
            })
            .unwrap_or_default();
        (descriptors, reference)
    }

    fn push(&mut self, name: &str, summary: &str, params: (Vec<Value>, Value), result: Value) {
        let errors: Vec<Value> =
            codes::ALL.iter().map(|(_, error, _)| json!({ "$ref": format!("#/components/errors/{error}") })).collect();
        self.methods.push(json!({
            "name": name,
            "summary": summary,
            "paramStructure": "by-name",
            "params": params.0,
            "x-params": params.1,
            "result": result,
            "errors": errors,
        }));
    }
}

fn without_description(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(map) = schema.as_object_mut() {
        map.remove("description");
    }
    schema
}

/// The OpenRPC document of a daemon of `version`.
pub fn document(version: &str) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = SCHEMAS_POINTER.into();
    let mut b = Builder { generator: settings.into_generator(), methods: Vec::new() };
    b.method::<EnqueueParams, EnqueueResult>("dev.enqueue.v1", "Enqueue one job.", "enqueued");
    b.method::<EnqueueBatchParams, EnqueueResults>(
        "dev.enqueue_batch.v1",
        "Enqueue 1–1000 jobs, all or nothing.",
        "enqueued",
    );
    b.method::<CancelParams, CancelResult>("dev.cancel.v1", "Cancel jobs by id, tag and/or chain group.", "cancelled");
    b.method::<JobIdParams, JobView>("dev.get.v1", "One job's view.", "job");
    b.method::<WaitParams, WaitResult>("dev.wait.v1", "Wait until a job is terminal, up to timeout_ms.", "job");
    b.method::<QueryJobsParams, JobPage>("dev.query_jobs.v1", "A page of jobs matching a filter.", "page");
    b.method::<NameParams, EventResult>("dev.event.v1", "Release the jobs waiting for an event.", "released");
    b.method::<LogsTailParams, LogChunk>("logs.tail.v1", "One chunk of a job's log.", "chunk");
    let follow_params = b.params::<LogsFollowParams>();
    let notification = b.generator.subschema_for::<FollowChunk>().to_value();
    b.push(
        "logs.follow.v1",
        "Follow a job's log (WebSocket subscription) until the job is terminal and its log drained.",
        follow_params,
        json!({"name": "subscription", "schema": {"type": ["string", "integer"]}}),
    );
    let follow = b.methods.last_mut().expect("just pushed");
    follow["x-subscription"] = json!({
        "notification": FOLLOW_NOTIFICATION,
        "unsubscribe": FOLLOW_UNSUBSCRIBE,
        "item": notification,
    });
    b.method::<NoParams, Stats>("admin.stats.v1", "Counts per queue and the daemon's system state.", "stats");
    b.method::<MaintenanceParams, MaintenanceResult>(
        "admin.maintenance.v1",
        "Remove ended jobs past retention now; vacuum when asked or over the size limit.",
        "maintenance",
    );
    b.method::<QueueParams, QueuePaused>("admin.queue.pause.v1", "Pause a queue: no job of it starts.", "queue");
    b.method::<QueueParams, QueuePaused>("admin.queue.resume.v1", "Resume a paused queue.", "queue");
    b.method::<RetryParams, EnqueueResults>("dev.retry.v1", "Enqueue ended jobs again, by id or by filter.", "retried");
    b.method::<RecurringSetParams, RecurringSetResult>(
        "dev.recurring.set.v1",
        "Create or replace a recurring job.",
        "recurring",
    );
    b.method::<NameParams, RecurringDeleteResult>("dev.recurring.delete.v1", "Delete a recurring job.", "deleted");
    b.method::<NoParams, RecurringList>("dev.recurring.list.v1", "Every recurring job.", "recurring");
    b.method::<NoParams, ReloadResult>(
        "admin.reload.v1",
        "Read config.toml again, as SIGHUP does (a daemon extra).",
        "reloaded",
    );
    b.method::<NoParams, UiLogin>(
        "admin.ui_login.v1",
        "A one-time sign-in link to the web dashboard (Unix socket or bearer token only).",
        "login",
    );
    let discover_params = b.params::<NoParams>();
    b.push(
        "rpc.discover",
        "This document.",
        discover_params,
        json!({"name": "openrpc", "schema": {
            "type": "object",
            "required": ["openrpc", "info", "methods"],
            "properties": {"openrpc": {"type": "string"}, "info": {"type": "object"}, "methods": {"type": "array"}}
        }}),
    );
    let error_schema = b.generator.subschema_for::<ErrorObject>().to_value();
    let mut schemas = b.generator.take_definitions(true);
    // The error object's schema, under a name clients look for.
    schemas.insert("Error".to_owned(), error_schema);
    let errors: Map<String, Value> = codes::ALL
        .iter()
        .map(|(code, name, when)| (name.to_string(), json!({ "code": code, "message": name, "data": when })))
        .collect();
    let methods = b.methods;
    assert!(methods.iter().map(|m| m["name"].as_str()).eq(METHODS.iter().map(|name| Some(*name))), "METHODS in order");
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "Semantica",
            "description": "A local job-queue daemon: JSON-RPC 2.0 over HTTP (TCP with a bearer token, or the Unix socket) and WebSocket. Errors carry data {kind, details, field, index, state, retry_after_ms, trace_id}; see components.schemas.Error.",
            "version": version,
            "license": {"name": "MIT OR Apache-2.0"},
        },
        "methods": methods,
        "components": {
            "schemas": schemas,
            "errors": errors,
        },
    })
}

/// The document as `docs/openrpc.json` holds it: pretty JSON and a newline.
pub fn document_text(version: &str) -> String {
    let mut text = serde_json::to_string_pretty(&document(version)).expect("a document serializes");
    text.push('\n');
    text
}

/// The schema of `pointer` (e.g. a method's `result.schema`) as a standalone schema: the
/// document's `components` come along, so its `$ref`s resolve.
pub fn standalone_schema(document: &Value, schema: &Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    })
}

/// A method of the document by name.
pub fn method<'a>(document: &'a Value, name: &str) -> Option<&'a Value> {
    document["methods"].as_array()?.iter().find(|method| method["name"] == name)
}
