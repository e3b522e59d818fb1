//! Paused queues and recurring jobs: the `paused_queues` and `recurring` tables of
//! migration 0004, and the JSON form a recurring job's `job` is kept in.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row};
use semantica_core::{
    BackoffRequest, Conditions, EnqueueRequest, ExecRequest, JobId, Recurring, ScheduleRequest, StoreError, StoreResult,
};
use serde::{Deserialize, Serialize};

use super::{codec, store_error};

/// `exec` as stored: command, args, env, cwd.
type StoredExec = (Option<String>, Vec<String>, BTreeMap<String, String>, Option<String>);
/// `backoff` as stored: base_ms, factor, max_ms, jitter.
type StoredBackoff = (Option<i64>, Option<f64>, Option<i64>, Option<f64>);

/// An [`EnqueueRequest`] as stored: every field of it, by the same names, so that what
/// was set is read back exactly (the engine validates it again at each slot).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRequest {
    job_type: Option<String>,
    queue: Option<String>,
    subject_key: Option<String>,
    generation: Option<i64>,
    payload_json: Option<String>,
    priority: Option<i64>,
    exec: Option<StoredExec>,
    max_attempts: Option<i64>,
    backoff: Option<StoredBackoff>,
    timeout_ms: Option<i64>,
    ttl_ms: Option<i64>,
    deadline_ms: Option<i64>,
    schedule: Option<(Option<i64>, Option<i64>)>,
    conditions: Option<(bool, bool, Option<String>)>,
    parent_job_id: Option<String>,
    tag: Option<String>,
    chain_group_id: Option<String>,
    trace_id: Option<String>,
}

pub(crate) fn encode_request(request: &EnqueueRequest) -> String {
    let stored = StoredRequest {
        job_type: request.job_type.clone(),
        queue: request.queue.clone(),
        subject_key: request.subject_key.clone(),
        generation: request.generation,
        payload_json: request.payload_json.clone(),
        priority: request.priority,
        exec: request.exec.as_ref().map(|e| (e.command.clone(), e.args.clone(), e.env.clone(), e.cwd.clone())),
        max_attempts: request.max_attempts,
        backoff: request.backoff.map(|b| (b.base_ms, b.factor, b.max_ms, b.jitter)),
        timeout_ms: request.timeout_ms,
        ttl_ms: request.ttl_ms,
        deadline_ms: request.deadline_ms,
        schedule: request.schedule.map(|s| (s.at_ms, s.delay_ms)),
        conditions: request
            .conditions
            .as_ref()
            .map(|c| (c.wait_for_idle, c.require_charging, c.wait_for_event.clone())),
        parent_job_id: request.parent_job_id.clone(),
        tag: request.tag.clone(),
        chain_group_id: request.chain_group_id.clone(),
        trace_id: request.trace_id.clone(),
    };
    serde_json::to_string(&stored).expect("a request serializes")
}

pub(crate) fn decode_request(text: &str) -> StoreResult<EnqueueRequest> {
    let stored: StoredRequest = serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("recurring.job_json does not decode: {error}")))?;
    Ok(EnqueueRequest {
        job_type: stored.job_type,
        queue: stored.queue,
        subject_key: stored.subject_key,
        generation: stored.generation,
        payload_json: stored.payload_json,
        priority: stored.priority,
        exec: stored.exec.map(|(command, args, env, cwd)| ExecRequest { command, args, env, cwd }),
        max_attempts: stored.max_attempts,
        backoff: stored.backoff.map(|(base_ms, factor, max_ms, jitter)| BackoffRequest {
            base_ms,
            factor,
            max_ms,
            jitter,
        }),
        timeout_ms: stored.timeout_ms,
        ttl_ms: stored.ttl_ms,
        deadline_ms: stored.deadline_ms,
        schedule: stored.schedule.map(|(at_ms, delay_ms)| ScheduleRequest { at_ms, delay_ms }),
        conditions: stored.conditions.map(|(wait_for_idle, require_charging, wait_for_event)| Conditions {
            wait_for_idle,
            require_charging,
            wait_for_event,
        }),
        parent_job_id: stored.parent_job_id,
        tag: stored.tag,
        chain_group_id: stored.chain_group_id,
        trace_id: stored.trace_id,
    })
}

const RECURRING_COLUMNS: &str = "name, cron, timezone, job_json, next_at_ms, last_slot_ms, last_enqueued_job_id";

fn decode(row: &Row<'_>) -> StoreResult<Recurring> {
    let time = |index: usize, column: &str| -> StoreResult<Option<u64>> {
        let value: Option<i64> = row.get(index).map_err(store_error)?;
        value
            .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("recurring.{column} is {v}"))))
            .transpose()
    };
    let job_json: String = row.get(3).map_err(store_error)?;
    let last_enqueued: Option<String> = row.get(6).map_err(store_error)?;
    let last_enqueued_job_id = last_enqueued
        .map(|text| {
            text.parse::<JobId>().map_err(|e| StoreError::Corrupt(format!("recurring.last_enqueued_job_id: {e}")))
        })
        .transpose()?;
    Ok(Recurring {
        name: row.get(0).map_err(store_error)?,
        cron: row.get(1).map_err(store_error)?,
        timezone: row.get(2).map_err(store_error)?,
        job: decode_request(&job_json)?,
        next_at_ms: time(4, "next_at_ms")?,
        last_slot_ms: time(5, "last_slot_ms")?,
        last_enqueued_job_id,
    })
}

fn list(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<Vec<Recurring>> {
    let mut statement = conn.prepare_cached(sql).map_err(store_error)?;
    let mut rows = statement.query(params).map_err(store_error)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(store_error)? {
        items.push(decode(row)?);
    }
    Ok(items)
}

pub(super) fn get(conn: &Connection, name: &str) -> StoreResult<Option<Recurring>> {
    let sql = format!("SELECT {RECURRING_COLUMNS} FROM recurring WHERE name = ?1");
    let mut statement = conn.prepare_cached(&sql).map_err(store_error)?;
    let found = statement.query_row([name], |row| Ok(decode(row))).optional().map_err(store_error)?;
    found.transpose()
}

pub(super) fn all(conn: &Connection) -> StoreResult<Vec<Recurring>> {
    list(conn, &format!("SELECT {RECURRING_COLUMNS} FROM recurring ORDER BY name"), [])
}

pub(super) fn due(conn: &Connection, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
    let sql = format!(
        "SELECT {RECURRING_COLUMNS} FROM recurring INDEXED BY recurring_next
         WHERE next_at_ms IS NOT NULL AND next_at_ms <= ?1 ORDER BY next_at_ms, name LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    list(conn, &sql, (i64::try_from(now_ms).unwrap_or(i64::MAX), limit))
}

pub(super) fn put(conn: &Connection, recurring: &Recurring) -> StoreResult<()> {
    let time = |value: Option<u64>, column: &str| value.map(|v| codec::ordered(v, column));
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO recurring ({RECURRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .and_then(|mut statement| {
        statement.execute((
            &recurring.name,
            &recurring.cron,
            &recurring.timezone,
            encode_request(&recurring.job),
            time(recurring.next_at_ms, "next_at_ms"),
            time(recurring.last_slot_ms, "last_slot_ms"),
            recurring.last_enqueued_job_id.map(|id| id.to_string()),
        ))
    })
    .map_err(store_error)?;
    Ok(())
}

pub(super) fn delete(conn: &Connection, name: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM recurring WHERE name = ?1")
        .and_then(|mut statement| statement.execute([name]))
        .map_err(store_error)?;
    Ok(())
}

pub(super) fn paused(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut statement = conn.prepare_cached("SELECT queue FROM paused_queues ORDER BY queue").map_err(store_error)?;
    let queues = statement.query_map([], |row| row.get(0)).map_err(store_error)?;
    queues.collect::<Result<_, _>>().map_err(store_error)
}

pub(super) fn set_paused(conn: &Connection, queue: &str, paused: bool) -> StoreResult<()> {
    let sql = if paused {
        "INSERT OR IGNORE INTO paused_queues (queue) VALUES (?1)"
    } else {
        "DELETE FROM paused_queues WHERE queue = ?1"
    };
    conn.prepare_cached(sql).and_then(|mut statement| statement.execute([queue])).map_err(store_error)?;
    Ok(())
}

/// The earliest `due_at_ms` of each queue's `QUEUED` jobs, for the queues named.
pub(super) fn oldest_queued_due(conn: &Connection, queue: &str) -> StoreResult<Option<u64>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT MIN(due_at_ms) FROM jobs INDEXED BY jobs_queued_due WHERE queue = ?1 AND state = 'QUEUED'",
        )
        .map_err(store_error)?;
    let value: Option<i64> = statement.query_row([queue], |row| row.get(0)).map_err(store_error)?;
    Ok(value.map(|v| v.max(0) as u64))
}
