//! A job as one row of the Postgres `jobs` table, and back: the only code that knows its
//! column layout and types.
//!
//! Writing asserts what core promises (ordered integers below 2^63, no NaN); reading
//! turns anything that does not decode into [`StoreError::Corrupt`], naming the column.

use std::collections::BTreeMap;

use postgres::types::{FromSql, ToSql};
use postgres::Row;
use semantica_core::{
    Artifact, Backoff, Conditions, ErrorKind, ExecSpec, Job, JobError, JobId, JobState, StoreError, StoreResult,
};

pub(crate) use crate::job_columns::{select_list, COLUMNS, COUNTER_MAX, MUTABLE_COLUMNS};

/// One bound value of a statement.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// An ordered integer (seq, generation, a time): core keeps these below 2^63 so that SQL
/// compares them as it compares u64.
pub(crate) fn ordered(value: u64, column: &str) -> i64 {
    assert!(value <= i64::MAX as u64, "{column} = {value} does not fit a signed 64-bit column");
    value as i64
}

/// A bound given by a caller (a time, a limit), compared with columns core keeps below
/// 2^63: past that it means "no bound".
pub(crate) fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn ordered_opt(value: Option<u64>, column: &str) -> Option<i64> {
    value.map(|v| ordered(v, column))
}

fn real(value: f64, column: &str) -> f64 {
    assert!(!value.is_nan(), "{column} is NaN");
    value
}

/// The row of `job`, in [`COLUMNS`] order.
pub(crate) fn encode(job: &Job) -> Vec<Param> {
    let exec = job.exec.as_ref();
    let args_json = exec.map(|e| serde_json::to_string(&e.args).expect("strings serialize"));
    let env_json = exec.map(|e| serde_json::to_string(&e.env).expect("strings serialize"));
    let artifacts: Vec<(&str, u64)> = job.artifacts.iter().map(|a| (a.name.as_str(), a.bytes)).collect();
    let row: Vec<Param> = vec![
        Box::new(ordered(job.seq, "seq")),
        Box::new(job.id.to_string()),
        Box::new(ordered(job.version, "version")),
        Box::new(job.queue.clone()),
        Box::new(job.job_type.clone()),
        Box::new(job.subject_key.clone()),
        Box::new(ordered(job.generation, "generation")),
        Box::new(job.state.as_str()),
        Box::new(job.priority),
        Box::new(job.payload_json.as_bytes().to_vec()),
        Box::new(exec.map(|e| e.command.clone())),
        Box::new(args_json),
        Box::new(env_json),
        Box::new(exec.and_then(|e| e.cwd.clone())),
        Box::new(i64::from(job.attempts)),
        Box::new(i64::from(job.max_attempts)),
        Box::new(ordered(job.backoff.base_ms, "backoff_base_ms")),
        Box::new(real(job.backoff.factor, "backoff_factor")),
        Box::new(ordered(job.backoff.max_ms, "backoff_max_ms")),
        Box::new(real(job.backoff.jitter, "backoff_jitter")),
        Box::new(ordered_opt(job.timeout_ms, "timeout_ms")),
        Box::new(ordered_opt(job.ttl_ms, "ttl_ms")),
        Box::new(ordered_opt(job.deadline_ms, "deadline_ms")),
        Box::new(job.conditions.wait_for_idle),
        Box::new(job.conditions.require_charging),
        Box::new(job.conditions.wait_for_event.clone()),
        Box::new(job.event_released),
        Box::new(job.parent_job_id.map(|p| p.to_string())),
        Box::new(job.parent_pending),
        Box::new(job.tag.clone()),
        Box::new(job.chain_group_id.clone()),
        Box::new(job.trace_id.clone()),
        Box::new(ordered(job.created_at_ms, "created_at_ms")),
        Box::new(ordered(job.due_at_ms, "due_at_ms")),
        Box::new(ordered_opt(job.started_at_ms, "started_at_ms")),
        Box::new(ordered_opt(job.finished_at_ms, "finished_at_ms")),
        Box::new(ordered_opt(job.wake_at_ms, "wake_at_ms")),
        Box::new(job.pid.map(i64::from)),
        // Never compared: kept bit for bit, whatever the OS handed over.
        Box::new(job.pid_started_at.map(|t| t as i64)),
        Box::new(job.reap_pending),
        Box::new(job.exit_code),
        Box::new(job.error.as_ref().map(|e| e.kind.as_str())),
        Box::new(job.error.as_ref().map(|e| e.message.as_bytes().to_vec())),
        Box::new(job.result_summary_json.as_ref().map(|r| r.as_bytes().to_vec())),
        Box::new(serde_json::to_string(&artifacts).expect("artifacts serialize")),
        Box::new(job.retry_of.map(|id| id.to_string())),
        Box::new(ordered_opt(job.deadline_wall_ms, "deadline_wall_ms")),
        Box::new(ordered_opt(job.at_wall_ms, "at_wall_ms")),
        Box::new(job.wall_offset_ms),
        Box::new(job.node.clone()),
    ];
    assert_eq!(row.len(), COLUMNS.len());
    row
}

fn corrupt(column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("jobs.{column}: {detail}"))
}

/// Reads the columns of one row in order, naming the column in every error.
struct Cells<'r> {
    row: &'r Row,
    index: usize,
}

impl Cells<'_> {
    fn get<'a, T: FromSql<'a>>(&'a mut self) -> StoreResult<T> {
        let column = COLUMNS[self.index];
        self.index += 1;
        self.row.try_get::<_, T>(self.index - 1).map_err(|e| corrupt(column, e))
    }

    fn u64_opt(&mut self) -> StoreResult<Option<u64>> {
        let column = COLUMNS[self.index];
        let value: Option<i64> = self.get()?;
        value.map(|v| u64::try_from(v).map_err(|_| corrupt(column, format!("negative: {v}")))).transpose()
    }

    fn u64(&mut self) -> StoreResult<u64> {
        let column = COLUMNS[self.index];
        self.u64_opt()?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn u32(&mut self) -> StoreResult<u32> {
        let column = COLUMNS[self.index];
        let value: i64 = self.get()?;
        u32::try_from(value).map_err(|_| corrupt(column, format!("out of range: {value}")))
    }

    fn utf8_opt(&mut self) -> StoreResult<Option<String>> {
        let column = COLUMNS[self.index];
        let bytes: Option<Vec<u8>> = self.get()?;
        bytes.map(|b| String::from_utf8(b).map_err(|_| corrupt(column, "not UTF-8"))).transpose()
    }

    fn id_opt(&mut self) -> StoreResult<Option<JobId>> {
        let column = COLUMNS[self.index];
        let text: Option<String> = self.get()?;
        text.map(|text| text.parse::<JobId>().map_err(|e| corrupt(column, e))).transpose()
    }
}

fn json<T>(column: &str, text: &str) -> StoreResult<T>
where
    T: serde::de::DeserializeOwned,
{
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// The job of one row selected with [`select_list`].
pub(crate) fn decode(row: &Row) -> StoreResult<Job> {
    let mut c = Cells { row, index: 0 };
    let seq = c.u64()?;
    if seq > COUNTER_MAX {
        return Err(corrupt("seq", format!("{seq} is past any sequence a store reaches")));
    }
    let id = c.id_opt()?.ok_or_else(|| corrupt("id", "unexpected NULL"))?;
    let version = c.u64()?;
    if version == 0 || version > COUNTER_MAX {
        return Err(corrupt("version", format!("{version} is no version a store writes")));
    }
    let queue: String = c.get()?;
    let job_type: String = c.get()?;
    let subject_key: String = c.get()?;
    let generation = c.u64()?;
    let state_text: String = c.get()?;
    let state = state_text.parse::<JobState>().map_err(|e| corrupt("state", format!("unknown state {:?}", e.0)))?;
    let priority: i32 = c.get()?;
    let payload_json = c.utf8_opt()?.ok_or_else(|| corrupt("payload_json", "unexpected NULL"))?;
    let command: Option<String> = c.get()?;
    let args: Option<String> = c.get()?;
    let args = args.map(|t| json::<Vec<String>>("exec_args_json", &t)).transpose()?;
    let env: Option<String> = c.get()?;
    let env = env.map(|t| json::<BTreeMap<String, String>>("exec_env_json", &t)).transpose()?;
    let cwd: Option<String> = c.get()?;
    let exec = match command {
        Some(command) => Some(ExecSpec { command, args: args.unwrap_or_default(), env: env.unwrap_or_default(), cwd }),
        None if args.is_none() && env.is_none() && cwd.is_none() => None,
        None => return Err(corrupt("exec_command", "NULL while other exec columns are set")),
    };
    let attempts = c.u32()?;
    let max_attempts = c.u32()?;
    let backoff = Backoff { base_ms: c.u64()?, factor: c.get()?, max_ms: c.u64()?, jitter: c.get()? };
    let timeout_ms = c.u64_opt()?;
    let ttl_ms = c.u64_opt()?;
    let deadline_ms = c.u64_opt()?;
    let conditions = Conditions { wait_for_idle: c.get()?, require_charging: c.get()?, wait_for_event: c.get()? };
    let event_released: bool = c.get()?;
    let parent_job_id = c.id_opt()?;
    let parent_pending: bool = c.get()?;
    let tag: Option<String> = c.get()?;
    let chain_group_id: Option<String> = c.get()?;
    let trace_id: String = c.get()?;
    let created_at_ms = c.u64()?;
    let due_at_ms = c.u64()?;
    let started_at_ms = c.u64_opt()?;
    let finished_at_ms = c.u64_opt()?;
    let wake_at_ms = c.u64_opt()?;
    let pid =
        c.u64_opt()?.map(|p| u32::try_from(p).map_err(|_| corrupt("pid", format!("out of range: {p}")))).transpose()?;
    let pid_started_at: Option<i64> = c.get()?;
    let reap_pending: bool = c.get()?;
    let exit_code: Option<i32> = c.get()?;
    let error_kind: Option<String> = c.get()?;
    let error_message = c.utf8_opt()?;
    let error = match (error_kind, error_message) {
        (None, None) => None,
        (Some(kind), Some(message)) => {
            Some(JobError { kind: kind.parse::<ErrorKind>().map_err(|e| corrupt("error_kind", e))?, message })
        }
        _ => return Err(corrupt("error_kind", "error kind and message must be both set or both NULL")),
    };
    let result_summary_json = c.utf8_opt()?;
    let artifacts_text: String = c.get()?;
    let artifacts = json::<Vec<(String, u64)>>("artifacts_json", &artifacts_text)?;
    let retry_of = c.id_opt()?;
    let deadline_wall_ms = c.u64_opt()?;
    let at_wall_ms = c.u64_opt()?;
    let wall_offset_ms: Option<i64> = c.get()?;
    let node: Option<String> = c.get()?;
    assert_eq!(c.index, COLUMNS.len(), "every column read");
    Ok(Job {
        id,
        seq,
        version,
        queue,
        job_type,
        subject_key,
        generation,
        state,
        priority,
        payload_json,
        exec,
        attempts,
        max_attempts,
        backoff,
        timeout_ms,
        ttl_ms,
        deadline_ms,
        deadline_wall_ms,
        at_wall_ms,
        wall_offset_ms,
        conditions,
        event_released,
        parent_job_id,
        parent_pending,
        tag,
        chain_group_id,
        trace_id,
        created_at_ms,
        due_at_ms,
        started_at_ms,
        finished_at_ms,
        wake_at_ms,
        pid,
        pid_started_at: pid_started_at.map(|t| t as u64),
        reap_pending,
        exit_code,
        error,
        result_summary_json,
        artifacts: artifacts.into_iter().map(|(name, bytes)| Artifact { name, bytes }).collect(),
        retry_of,
        node,
    })
}
