//! A job's columns, in the one order both SQL stores encode and decode them (SQLite's
//! `codec.rs` and Postgres' `codec.rs`): the names, which of them an update may change,
//! and the bound on counters. Each store's codec knows its own types and tables.

/// Every column of a job, in the order each store's `encode` fills them and `decode`
/// reads them.
pub(crate) const COLUMNS: [&str; 50] = [
    "seq",
    "id",
    "version",
    "queue",
    "job_type",
    "subject_key",
    "generation",
    "state",
    "priority",
    "payload_json",
    "exec_command",
    "exec_args_json",
    "exec_env_json",
    "exec_cwd",
    "attempts",
    "max_attempts",
    "backoff_base_ms",
    "backoff_factor",
    "backoff_max_ms",
    "backoff_jitter",
    "timeout_ms",
    "ttl_ms",
    "deadline_ms",
    "wait_for_idle",
    "require_charging",
    "wait_for_event",
    "event_released",
    "parent_job_id",
    "parent_pending",
    "tag",
    "chain_group_id",
    "trace_id",
    "created_at_ms",
    "due_at_ms",
    "started_at_ms",
    "finished_at_ms",
    "wake_at_ms",
    "pid",
    "pid_started_at",
    "reap_pending",
    "exit_code",
    "error_kind",
    "error_message",
    "result_summary_json",
    "artifacts_json",
    "retry_of",
    "deadline_wall_ms",
    "at_wall_ms",
    "wall_offset_ms",
    "node",
];

/// The columns an update may change: core fixes everything else of a job when it is
/// inserted (`Tx::update` asserts it), so an UPDATE leaves those columns, and the indexes
/// made only of them (`id`'s), alone.
pub(crate) const MUTABLE_COLUMNS: [&str; 20] = [
    "version",
    "deadline_ms",
    "wall_offset_ms",
    "state",
    "attempts",
    "due_at_ms",
    "started_at_ms",
    "finished_at_ms",
    "wake_at_ms",
    "pid",
    "pid_started_at",
    "reap_pending",
    "event_released",
    "parent_pending",
    "exit_code",
    "error_kind",
    "error_message",
    "result_summary_json",
    "artifacts_json",
    "node",
];

/// `seq, id, …` for a SELECT. Built once: the store's hot statements are looked up in
/// the statement cache by their text, and formatting it anew per call showed in profiles.
pub(crate) fn select_list() -> &'static str {
    static LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| COLUMNS.join(", "));
    &LIST
}

/// Highest seq or version a store holds: counted up by one per job or write, they never
/// get near it; a file that says otherwise is damaged, and one more would not fit.
pub(crate) const COUNTER_MAX: u64 = 1 << 62;
