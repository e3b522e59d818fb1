//! A job as one row of `jobs`, and back: the only code that knows the column layout.
//!
//! Writing asserts what core promises (ordered integers below 2^63, no NaN); reading
//! turns anything that does not decode into [`StoreError::Corrupt`], naming the column.

use std::collections::BTreeMap;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Row;
use semantica_core::{
    Artifact, Backoff, Conditions, ErrorKind, ExecSpec, Job, JobError, JobId, JobState, StoreError, StoreResult,
};

pub(crate) use crate::job_columns::{select_list, COLUMNS, COUNTER_MAX, MUTABLE_COLUMNS};

/// The columns of `job_specs`, written once when the job is inserted (migration 0007);
/// `seq` joins them to the job's row in `jobs`, which holds every other column.
pub(crate) const SPEC_COLUMNS: [&str; 15] = [
    "seq",
    "payload_json",
    "exec_command",
    "exec_args_json",
    "exec_env_json",
    "exec_cwd",
    "max_attempts",
    "backoff_base_ms",
    "backoff_factor",
    "backoff_max_ms",
    "backoff_jitter",
    "timeout_ms",
    "ttl_ms",
    "trace_id",
    "retry_of",
];

/// What a SELECT of whole jobs reads from: the hot row, and its spec by `seq` (a LEFT
/// JOIN, so that the hot row drives every plan and a row without its spec decodes as
/// the damage it is instead of vanishing).
pub(crate) const JOBS_FROM: &str = "jobs LEFT JOIN job_specs USING (seq)";

/// An ordered integer (seq, generation, a time): core keeps these below 2^63 so that SQL
/// compares them as it compares u64.
pub(crate) fn ordered(value: u64, column: &str) -> i64 {
    assert!(value <= i64::MAX as u64, "{column} = {value} does not fit a signed 64-bit column");
    value as i64
}

/// One bound value: borrowed from the job where it can be (its text is not copied to be
/// written), owned where it is computed (an id's text, a JSON list).
pub(crate) type Cell<'a> = ToSqlOutput<'a>;

const NULL: Cell<'static> = ToSqlOutput::Borrowed(ValueRef::Null);

fn int(value: i64) -> Cell<'static> {
    ToSqlOutput::Borrowed(ValueRef::Integer(value))
}

fn ordered_cell(value: u64, column: &str) -> Cell<'static> {
    int(ordered(value, column))
}

fn ordered_opt(value: Option<u64>, column: &str) -> Cell<'static> {
    value.map_or(NULL, |v| ordered_cell(v, column))
}

fn text(value: &str) -> Cell<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes()))
}

fn text_opt(value: Option<&str>) -> Cell<'_> {
    value.map_or(NULL, text)
}

fn owned_text(value: String) -> Cell<'static> {
    ToSqlOutput::Owned(Value::Text(value))
}

fn flag(value: bool) -> Cell<'static> {
    int(i64::from(value))
}

fn real(value: f64, column: &str) -> Cell<'static> {
    // SQLite turns NaN into NULL; core's validation never lets one through.
    assert!(!value.is_nan(), "{column} is NaN");
    ToSqlOutput::Borrowed(ValueRef::Real(value))
}

/// `artifacts_json`: a JSON array of `[name, bytes]` pairs; a job without artifacts (every
/// job until it ends, most after) writes the literal, not a serialized empty list.
fn artifacts_json(artifacts: &[Artifact]) -> Cell<'static> {
    if artifacts.is_empty() {
        return text("[]");
    }
    let pairs: Vec<(&str, u64)> = artifacts.iter().map(|a| (a.name.as_str(), a.bytes)).collect();
    owned_text(serde_json::to_string(&pairs).expect("artifacts serialize"))
}

/// The row of `job`, in [`COLUMNS`] order.
pub(crate) fn encode(job: &Job) -> Vec<Cell<'_>> {
    let exec = job.exec.as_ref();
    let row = vec![
        ordered_cell(job.seq, "seq"),
        owned_text(job.id.to_string()),
        ordered_cell(job.version, "version"),
        text(&job.queue),
        text(&job.job_type),
        text(&job.subject_key),
        ordered_cell(job.generation, "generation"),
        text(job.state.as_str()),
        int(job.priority.into()),
        text(&job.payload_json),
        text_opt(exec.map(|e| e.command.as_str())),
        exec.map_or(NULL, |e| owned_text(serde_json::to_string(&e.args).expect("strings serialize"))),
        exec.map_or(NULL, |e| owned_text(serde_json::to_string(&e.env).expect("strings serialize"))),
        text_opt(exec.and_then(|e| e.cwd.as_deref())),
        int(job.attempts.into()),
        int(job.max_attempts.into()),
        ordered_cell(job.backoff.base_ms, "backoff_base_ms"),
        real(job.backoff.factor, "backoff_factor"),
        ordered_cell(job.backoff.max_ms, "backoff_max_ms"),
        real(job.backoff.jitter, "backoff_jitter"),
        ordered_opt(job.timeout_ms, "timeout_ms"),
        ordered_opt(job.ttl_ms, "ttl_ms"),
        ordered_opt(job.deadline_ms, "deadline_ms"),
        flag(job.conditions.wait_for_idle),
        flag(job.conditions.require_charging),
        text_opt(job.conditions.wait_for_event.as_deref()),
        flag(job.event_released),
        job.parent_job_id.map_or(NULL, |p| owned_text(p.to_string())),
        flag(job.parent_pending),
        text_opt(job.tag.as_deref()),
        text_opt(job.chain_group_id.as_deref()),
        text(&job.trace_id),
        ordered_cell(job.created_at_ms, "created_at_ms"),
        ordered_cell(job.due_at_ms, "due_at_ms"),
        ordered_opt(job.started_at_ms, "started_at_ms"),
        ordered_opt(job.finished_at_ms, "finished_at_ms"),
        ordered_opt(job.wake_at_ms, "wake_at_ms"),
        job.pid.map_or(NULL, |p| int(p.into())),
        // Never compared: kept bit for bit, whatever the OS handed over.
        job.pid_started_at.map_or(NULL, |t| int(t as i64)),
        flag(job.reap_pending),
        job.exit_code.map_or(NULL, |c| int(c.into())),
        text_opt(job.error.as_ref().map(|e| e.kind.as_str())),
        text_opt(job.error.as_ref().map(|e| e.message.as_str())),
        text_opt(job.result_summary_json.as_deref()),
        artifacts_json(&job.artifacts),
        job.retry_of.map_or(NULL, |id| owned_text(id.to_string())),
        ordered_opt(job.deadline_wall_ms, "deadline_wall_ms"),
        ordered_opt(job.at_wall_ms, "at_wall_ms"),
        job.wall_offset_ms.map_or(NULL, int),
        text_opt(job.node.as_deref()),
    ];
    assert_eq!(row.len(), COLUMNS.len());
    row
}

/// The values of [`MUTABLE_COLUMNS`], in that order: what an update binds. Never the
/// payload or anything else fixed at enqueue, which an update leaves alone (encoding them
/// copied a job's payload at every state change).
pub(crate) fn encode_mutable(job: &Job) -> [Cell<'_>; MUTABLE_COLUMNS.len()] {
    [
        ordered_cell(job.version, "version"),
        ordered_opt(job.deadline_ms, "deadline_ms"),
        job.wall_offset_ms.map_or(NULL, int),
        text(job.state.as_str()),
        int(job.attempts.into()),
        ordered_cell(job.due_at_ms, "due_at_ms"),
        ordered_opt(job.started_at_ms, "started_at_ms"),
        ordered_opt(job.finished_at_ms, "finished_at_ms"),
        ordered_opt(job.wake_at_ms, "wake_at_ms"),
        job.pid.map_or(NULL, |p| int(p.into())),
        job.pid_started_at.map_or(NULL, |t| int(t as i64)),
        flag(job.reap_pending),
        flag(job.event_released),
        flag(job.parent_pending),
        job.exit_code.map_or(NULL, |c| int(c.into())),
        text_opt(job.error.as_ref().map(|e| e.kind.as_str())),
        text_opt(job.error.as_ref().map(|e| e.message.as_str())),
        text_opt(job.result_summary_json.as_deref()),
        artifacts_json(&job.artifacts),
        text_opt(job.node.as_deref()),
    ]
}

/// Which of [`MUTABLE_COLUMNS`] differ between two versions of a job: bit `i` for column
/// `i`. An UPDATE that sets only those leaves every index that names none of them (in
/// its key or its predicate) untouched; one that sets every column makes SQLite visit
/// each index whose predicate holds before or after, and rewrite the entry when it holds
/// both times.
pub(crate) fn changed_columns(before: &Job, after: &Job) -> u32 {
    let changed = [
        before.version != after.version,
        before.deadline_ms != after.deadline_ms,
        before.wall_offset_ms != after.wall_offset_ms,
        before.state != after.state,
        before.attempts != after.attempts,
        before.due_at_ms != after.due_at_ms,
        before.started_at_ms != after.started_at_ms,
        before.finished_at_ms != after.finished_at_ms,
        before.wake_at_ms != after.wake_at_ms,
        before.pid != after.pid,
        before.pid_started_at != after.pid_started_at,
        before.reap_pending != after.reap_pending,
        before.event_released != after.event_released,
        before.parent_pending != after.parent_pending,
        before.exit_code != after.exit_code,
        before.error.as_ref().map(|e| &e.kind) != after.error.as_ref().map(|e| &e.kind),
        before.error.as_ref().map(|e| &e.message) != after.error.as_ref().map(|e| &e.message),
        before.result_summary_json != after.result_summary_json,
        before.artifacts != after.artifacts,
        before.node != after.node,
    ];
    changed.iter().enumerate().filter(|(_, changed)| **changed).fold(0, |mask, (i, _)| mask | 1 << i)
}

/// Every bit of [`changed_columns`]: an update whose earlier version is not at hand.
pub(crate) const ALL_MUTABLE: u32 = (1 << MUTABLE_COLUMNS.len()) - 1;

/// Reads the columns of one row in order, naming the column in every error.
struct Cells<'r, 's> {
    row: &'r Row<'s>,
    index: usize,
}

fn corrupt(column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("jobs.{column}: {detail}"))
}

impl Cells<'_, '_> {
    fn next(&mut self) -> StoreResult<(ValueRef<'_>, &'static str)> {
        let column = COLUMNS[self.index];
        let value = self.row.get_ref(self.index).map_err(|e| corrupt(column, e))?;
        self.index += 1;
        Ok((value, column))
    }

    fn i64_opt(&mut self) -> StoreResult<Option<i64>> {
        match self.next()? {
            (ValueRef::Null, _) => Ok(None),
            (ValueRef::Integer(v), _) => Ok(Some(v)),
            (other, column) => Err(corrupt(column, format!("expected an integer, found {:?}", other.data_type()))),
        }
    }

    fn i64(&mut self) -> StoreResult<i64> {
        let column = COLUMNS[self.index];
        self.i64_opt()?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn u64_opt(&mut self) -> StoreResult<Option<u64>> {
        let column = COLUMNS[self.index];
        self.i64_opt()?.map(|v| u64::try_from(v).map_err(|_| corrupt(column, format!("negative: {v}")))).transpose()
    }

    fn u64(&mut self) -> StoreResult<u64> {
        let column = COLUMNS[self.index];
        self.u64_opt()?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn int<T: TryFrom<i64>>(&mut self) -> StoreResult<T> {
        let column = COLUMNS[self.index];
        let v = self.i64()?;
        T::try_from(v).map_err(|_| corrupt(column, format!("out of range: {v}")))
    }

    fn int_opt<T: TryFrom<i64>>(&mut self) -> StoreResult<Option<T>> {
        let column = COLUMNS[self.index];
        self.i64_opt()?.map(|v| T::try_from(v).map_err(|_| corrupt(column, format!("out of range: {v}")))).transpose()
    }

    fn flag(&mut self) -> StoreResult<bool> {
        let column = COLUMNS[self.index];
        match self.i64()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(corrupt(column, format!("not a flag: {v}"))),
        }
    }

    fn real(&mut self) -> StoreResult<f64> {
        match self.next()? {
            (ValueRef::Real(v), _) => Ok(v),
            (other, column) => Err(corrupt(column, format!("expected a real, found {:?}", other.data_type()))),
        }
    }

    fn text_opt(&mut self) -> StoreResult<Option<String>> {
        match self.next()? {
            (ValueRef::Null, _) => Ok(None),
            (ValueRef::Text(bytes), column) => {
                String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| corrupt(column, "not UTF-8"))
            }
            (other, column) => Err(corrupt(column, format!("expected text, found {:?}", other.data_type()))),
        }
    }

    fn text(&mut self) -> StoreResult<String> {
        let column = COLUMNS[self.index];
        self.text_opt()?.ok_or_else(|| corrupt(column, "unexpected NULL"))
    }

    fn id_opt(&mut self) -> StoreResult<Option<JobId>> {
        let column = COLUMNS[self.index];
        self.text_opt()?.map(|text| text.parse::<JobId>().map_err(|e| corrupt(column, e))).transpose()
    }
}

fn json<T>(column: &str, text: &str) -> StoreResult<T>
where
    T: serde::de::DeserializeOwned,
{
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// The job of one row selected with [`select_list`].
/// The job id of a row selected with [`select_list`], without decoding the rest.
pub(crate) fn row_id(row: &Row<'_>) -> StoreResult<JobId> {
    let text = row.get_ref(1).map_err(|e| corrupt("id", e))?.as_str().map_err(|e| corrupt("id", e))?;
    text.parse::<JobId>().map_err(|e| corrupt("id", e))
}

pub(crate) fn decode(row: &Row<'_>) -> StoreResult<Job> {
    let mut c = Cells { row, index: 0 };
    let seq = c.u64()?;
    if seq > COUNTER_MAX {
        return Err(corrupt("seq", format!("{seq} is past any sequence a store reaches")));
    }
    let id = c.id_opt()?.ok_or_else(|| corrupt("id", "unexpected NULL"))?;
    let version = c.u64()?;
    if version == 0 || version > COUNTER_MAX {
        // Versions count writes from 1; the next one must still fit its column.
        return Err(corrupt("version", format!("{version} is no version a store writes")));
    }
    let queue = c.text()?;
    let job_type = c.text()?;
    let subject_key = c.text()?;
    let generation = c.u64()?;
    let state_text = c.text()?;
    let state = state_text.parse::<JobState>().map_err(|e| corrupt("state", format!("unknown state {:?}", e.0)))?;
    let priority = c.int()?;
    let payload_json = c.text()?;
    let command = c.text_opt()?;
    let args = c.text_opt()?.map(|t| json::<Vec<String>>("exec_args_json", &t)).transpose()?;
    let env = c.text_opt()?.map(|t| json::<BTreeMap<String, String>>("exec_env_json", &t)).transpose()?;
    let cwd = c.text_opt()?;
    let exec = match command {
        Some(command) => Some(ExecSpec { command, args: args.unwrap_or_default(), env: env.unwrap_or_default(), cwd }),
        None if args.is_none() && env.is_none() && cwd.is_none() => None,
        None => return Err(corrupt("exec_command", "NULL while other exec columns are set")),
    };
    let attempts = c.int()?;
    let max_attempts = c.int()?;
    let backoff = Backoff { base_ms: c.u64()?, factor: c.real()?, max_ms: c.u64()?, jitter: c.real()? };
    let timeout_ms = c.u64_opt()?;
    let ttl_ms = c.u64_opt()?;
    let deadline_ms = c.u64_opt()?;
    let conditions =
        Conditions { wait_for_idle: c.flag()?, require_charging: c.flag()?, wait_for_event: c.text_opt()? };
    let event_released = c.flag()?;
    let parent_job_id = c.id_opt()?;
    let parent_pending = c.flag()?;
    let tag = c.text_opt()?;
    let chain_group_id = c.text_opt()?;
    let trace_id = c.text()?;
    let created_at_ms = c.u64()?;
    let due_at_ms = c.u64()?;
    let started_at_ms = c.u64_opt()?;
    let finished_at_ms = c.u64_opt()?;
    let wake_at_ms = c.u64_opt()?;
    let pid = c.int_opt()?;
    let pid_started_at = c.i64_opt()?.map(|t| t as u64);
    let reap_pending = c.flag()?;
    let exit_code = c.int_opt()?;
    let error_kind = c.text_opt()?;
    let error_message = c.text_opt()?;
    let error = match (error_kind, error_message) {
        (None, None) => None,
        (Some(kind), Some(message)) => {
            Some(JobError { kind: kind.parse::<ErrorKind>().map_err(|e| corrupt("error_kind", e))?, message })
        }
        _ => return Err(corrupt("error_kind", "error kind and message must be both set or both NULL")),
    };
    let result_summary_json = c.text_opt()?;
    let artifacts = json::<Vec<(String, u64)>>("artifacts_json", &c.text()?)?;
    let retry_of = c.id_opt()?;
    let deadline_wall_ms = c.u64_opt()?;
    let at_wall_ms = c.u64_opt()?;
    let wall_offset_ms = c.i64_opt()?;
    let node = c.text_opt()?;
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
        pid_started_at,
        reap_pending,
        exit_code,
        error,
        result_summary_json,
        artifacts: artifacts.into_iter().map(|(name, bytes)| Artifact { name, bytes }).collect(),
        retry_of,
        node,
    })
}
