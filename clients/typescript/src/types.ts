/**
 * The wire types of API.md. Field names are the daemon's own (snake_case), so that a
 * value reads the same here, in API.md, in docs/openrpc.json and in the daemon's logs.
 */

export type JobState =
  | 'QUEUED'
  | 'SCHEDULED'
  | 'RUNNING'
  | 'DONE'
  | 'FAILED'
  | 'CANCELLED'
  | 'SUPERSEDED'
  | 'SKIPPED_TTL'
  | 'SKIPPED_DEADLINE';

/** The states a job never leaves. */
export const TERMINAL_STATES: readonly JobState[] = [
  'DONE',
  'FAILED',
  'CANCELLED',
  'SUPERSEDED',
  'SKIPPED_TTL',
  'SKIPPED_DEADLINE',
];

export interface Exec {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export interface Backoff {
  base_ms?: number;
  factor?: number;
  max_ms?: number;
  jitter?: number;
}

export type Schedule = { at: number } | { delay_ms: number };

export interface Conditions {
  wait_for_idle?: boolean;
  require_charging?: boolean;
  wait_for_event?: string;
}

/** `dev.enqueue.v1` params. */
export interface EnqueueParams {
  job_type: string;
  queue: string;
  subject_key: string;
  generation?: number;
  payload?: unknown;
  priority?: number;
  /** Present: a subprocess job. Absent: the in-process handler of `job_type`. */
  exec?: Exec;
  max_attempts?: number;
  backoff?: Backoff;
  timeout_ms?: number;
  ttl_ms?: number;
  /** Epoch ms. */
  deadline?: number;
  schedule?: Schedule;
  conditions?: Conditions;
  parent_job_id?: string;
  tag?: string;
  chain_group_id?: string;
  trace_id?: string;
  /** W3C Trace Context (API.md v1.1). */
  traceparent?: string;
}

/** `dev.enqueue.v1` result, also one item of a batch's or a retry's `results`. */
export interface Enqueued {
  job_id: string;
  queue: string;
  state: JobState;
  generation: number;
  deduplicated: boolean;
}

export interface JobError {
  kind: string;
  message: string;
}

export interface Artifact {
  name: string;
  bytes: number;
}

/** The job view of `dev.get.v1`; times are wall-clock epoch ms. */
export interface Job {
  id: string;
  queue: string;
  job_type: string;
  subject_key: string;
  generation: number;
  state: JobState;
  priority: number;
  payload: unknown;
  execution_mode: 'SUBPROCESS' | 'IN_PROCESS';
  pid: number | null;
  attempts: number;
  max_attempts: number;
  created_at: number;
  scheduled_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  error: JobError | null;
  result_summary: unknown;
  artifacts: Artifact[];
  tag: string | null;
  chain_group_id: string | null;
  parent_job_id: string | null;
  trace_id: string | null;
  /** The job this one retries (`dev.retry.v1`), else null. */
  retry_of: string | null;
  /** The daemon that runs or ran its last attempt (several daemons on one Postgres). */
  node?: string | null;
}

/** `dev.wait.v1` when the job did not end in time. */
export interface WaitTimedOut {
  timed_out: true;
  job: Job;
}

export type WaitResult = Job | WaitTimedOut;

/** True when `dev.wait.v1` answered before the job ended. */
export function isTimedOut(result: WaitResult): result is WaitTimedOut {
  return (result as Partial<WaitTimedOut>).timed_out === true;
}

export interface CancelParams {
  job_id?: string;
  tag?: string;
  chain_group_id?: string;
}

export interface Cancelled {
  cancelled_count: number;
}

/** The filter of `dev.query_jobs.v1` and `dev.retry.v1`. */
export interface JobFilter {
  state?: JobState[];
  queue?: string[];
  job_type?: string;
  tag?: string;
  chain_group_id?: string;
  subject_key_prefix?: string;
  /** Epoch ms. */
  created_after?: number;
}

export interface QueryJobsParams {
  filter?: JobFilter;
  sort?: 'ASC' | 'DESC';
  /** 1–200 per page (50). */
  limit?: number;
  cursor?: string;
}

export interface JobPage {
  items: Job[];
  next_cursor: string | null;
}

export interface EventReleased {
  released_count: number;
}

export interface LogsTailParams {
  job_id: string;
  offset?: number;
  limit?: number;
}

/** One `logs.tail.v1` answer. */
export interface LogChunk {
  chunk: string;
  next_offset: number;
  eof: boolean;
}

/** One `logs.follow.v1` notification; the last one carries `eof: true` and an empty chunk. */
export interface FollowChunk {
  chunk: string;
  next_offset: number;
  eof?: boolean;
}

export interface QueueStats {
  name: string;
  queued: number;
  scheduled: number;
  running: number;
  done: number;
  failed: number;
  cancelled: number;
  superseded: number;
  skipped: number;
  avg_wait_ms: number;
  paused: boolean;
  oldest_wait_ms: number;
}

export interface SystemStats {
  cpu_usage: number;
  memory_usage: number;
  is_idle: boolean;
  on_battery: boolean;
  db_size: number;
  db_wal_size: number;
  uptime_ms: number;
  version: string;
}

export interface NodeStats {
  id: string;
  /** Epoch ms by the database's clock; `null` on SQLite (one daemon, no lease). */
  lease_expires_at: number | null;
  running: number;
}

export interface Stats {
  queues: QueueStats[];
  system: SystemStats;
  /** The daemons sharing the store; on SQLite only this one, without a lease. */
  nodes?: NodeStats[];
}

export interface MaintenanceParams {
  force_vacuum?: boolean;
}

export interface Maintenance {
  deleted_jobs: number;
  deleted_logs: number;
  vacuumed: boolean;
  db_size_before: number;
  db_size_after: number;
}

export interface QueuePaused {
  queue: string;
  paused: boolean;
}

export type RetryParams = { job_id: string } | { filter: JobFilter; limit?: number };

export interface Retried {
  results: Enqueued[];
}

/** A recurring job's `job`: enqueue params without `generation` and `schedule`. */
export type RecurringJob = Omit<EnqueueParams, 'generation' | 'schedule'>;

export interface RecurringSetParams {
  name: string;
  /** Five fields: `m h dom mon dow`. */
  cron: string;
  /** `UTC` (default) or an IANA name. */
  timezone?: string;
  job: RecurringJob;
}

export interface RecurringSet {
  name: string;
  /** Epoch ms of the next slot. */
  next_at: number | null;
}

export interface Recurring {
  name: string;
  cron: string;
  timezone: string;
  job: RecurringJob;
  next_at: number | null;
  last_enqueued_job_id: string | null;
}

export interface RecurringList {
  items: Recurring[];
}

export interface RecurringDeleted {
  deleted: boolean;
}

/** `admin.reload.v1` (beyond API.md: the daemon's own). */
export interface Reloaded {
  reloaded: boolean;
  changed: string[];
  restart_required: string[];
}

/** `admin.ui_login.v1` (API.md v1.1, "Web dashboard"). */
export interface UiLogin {
  url: string;
  expires_at: number;
}

/** `rpc.discover`: an OpenRPC 1.3 document. */
export interface OpenRpcDocument {
  openrpc: string;
  info: { title?: string; version: string; [key: string]: unknown };
  methods: Array<{ name: string; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** What `daemon.json` holds. */
export interface DaemonInfo {
  pid: number;
  rpc_addr: string;
  socket: string;
  version: string;
}
