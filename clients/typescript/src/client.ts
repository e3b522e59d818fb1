/**
 * The client: one async method per method of API.md, over one keep-alive connection
 * pool. It finds the daemon by itself (see README), retries a throttled call a bounded
 * number of times, and never retries anything else (an enqueue that failed in flight
 * may have been committed; the caller decides).
 */

import * as http from 'node:http';
import WebSocket from 'ws';

import {
  DAEMON_NOT_RUNNING,
  DaemonNotRunningError,
  SemanticaError,
  TRANSPORT_ERROR,   ThrottledError,
  TransportError,
  errorFromWire,
  type WireError,
} from './errors.js';
import { call, resolveEndpoint, type Endpoint, type EndpointOptions } from './transport.js';
import type {
  CancelParams,
  Cancelled,
  Enqueued,
  EnqueueParams,
  EventReleased,
  FollowChunk,
  Job,
  JobPage,
  LogChunk,
  LogsTailParams,
  Maintenance,
  MaintenanceParams,
  OpenRpcDocument,
  QueryJobsParams,
  QueuePaused,
  RecurringDeleted,
  RecurringList,
  RecurringSet,
  RecurringSetParams,
  Reloaded,
  Retried,
  RetryParams,
  Stats,
  UiLogin,
  WaitResult,
} from './types.js';

export interface ClientOptions extends EndpointOptions {
  /** How many times a 4003 answer is retried after its `retry_after_ms` before it is thrown (3). */
  throttleRetriesMax?: number;
}

/** Default of {@link ClientOptions.throttleRetriesMax}. */
export const THROTTLE_RETRIES_DEFAULT = 3;
/** `dev.wait.v1`'s longest wait. */
export const WAIT_MS_MAX = 300_000;
/** A page of `dev.query_jobs.v1` holds at most this many jobs. */
export const PAGE_LIMIT_MAX = 200;

/**
 * Every JSON-RPC method of the contract and the client method that calls it. A test
 * checks `docs/openrpc.json` against this table, so a new daemon method cannot go
 * without a client method unnoticed.
 */
export const METHODS = {
  'dev.enqueue.v1': 'enqueue',
  'dev.enqueue_batch.v1': 'enqueueBatch',
  'dev.get.v1': 'get',
  'dev.wait.v1': 'wait',
  'dev.cancel.v1': 'cancel',
  'dev.query_jobs.v1': 'jobs',
  'dev.event.v1': 'event',
  'logs.tail.v1': 'logs',
  'logs.follow.v1': 'follow',
  'logs.unfollow.v1': 'follow',
  'admin.stats.v1': 'stats',
  'admin.maintenance.v1': 'maintenance',
  'admin.queue.pause.v1': 'pause',
  'admin.queue.resume.v1': 'resume',
  'admin.reload.v1': 'reload',
  'admin.ui_login.v1': 'uiLogin',
  'dev.retry.v1': 'retry',
  'dev.recurring.set.v1': 'recurringSet',
  'dev.recurring.list.v1': 'recurringList',
  'dev.recurring.delete.v1': 'recurringDelete',
  'rpc.discover': 'discover',
} as const satisfies Record<string, keyof Client>;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Client {
  private readonly options: ClientOptions;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly throttleRetriesMax: number;
  private endpoint: Endpoint | undefined;
  private nextId = 1;

  constructor(options: ClientOptions = {}) {
    this.options = { ...options };
    this.throttleRetriesMax = options.throttleRetriesMax ?? THROTTLE_RETRIES_DEFAULT;
    if (!Number.isInteger(this.throttleRetriesMax) || this.throttleRetriesMax < 0) {
      throw new RangeError(`throttleRetriesMax must be a non-negative integer, not ${this.throttleRetriesMax}`);
    }
  }

  /** Closes the idle keep-alive connections (open ones close once their call ends). */
  close(): void {
    this.agent.destroy();
  }

  /** Calls any method by name, e.g. one newer than this client. */
  async request<T = unknown>(method: string, params: object = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const endpoint = await this.resolve();
      try {
        return (await call(this.agent, endpoint, this.nextId++, method, params)) as T;
      } catch (error) {
        // A daemon restarted elsewhere (new socket, new port) is found again next call.
        if (!(error instanceof SemanticaError) || error.code === DAEMON_NOT_RUNNING || error.code === TRANSPORT_ERROR) {
          this.endpoint = undefined;
        }
        if (!(error instanceof ThrottledError) || attempt >= this.throttleRetriesMax) throw error;
        await sleep(error.retryAfterMs);
      }
    }
  }

  private async resolve(): Promise<Endpoint> {
    this.endpoint ??= await resolveEndpoint(this.options);
    return this.endpoint;
  }

  enqueue(params: EnqueueParams): Promise<Enqueued> {
    return this.request('dev.enqueue.v1', params);
  }

  /** All or nothing: one invalid job refuses the batch (ValidationError with `index`). */
  async enqueueBatch(jobs: EnqueueParams[]): Promise<Enqueued[]> {
    const answer = await this.request<{ results: Enqueued[] }>('dev.enqueue_batch.v1', { jobs });
    return answer.results;
  }

  get(jobId: string): Promise<Job> {
    return this.request('dev.get.v1', { job_id: jobId });
  }

  /** The job once terminal, or `{timed_out: true, job}` (see `isTimedOut`). */
  wait(jobId: string, timeoutMs: number = WAIT_MS_MAX): Promise<WaitResult> {
    return this.request('dev.wait.v1', { job_id: jobId, timeout_ms: timeoutMs });
  }

  cancel(params: CancelParams | string): Promise<Cancelled> {
    return this.request('dev.cancel.v1', typeof params === 'string' ? { job_id: params } : params);
  }

  /** One page of `dev.query_jobs.v1`. */
  jobsPage(params: QueryJobsParams = {}): Promise<JobPage> {
    return this.request('dev.query_jobs.v1', params);
  }

  /** Every job that matches, page after page, following `next_cursor` to the end. */
  async *jobs(params: Omit<QueryJobsParams, 'cursor'> = {}): AsyncGenerator<Job, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.jobsPage(cursor === undefined ? params : { ...params, cursor });
      yield* page.items;
      if (page.next_cursor === null || page.next_cursor === undefined) return;
      // A cursor that does not move would page forever.
      if (page.next_cursor === cursor || page.items.length === 0) {
        throw new TransportError(`dev.query_jobs.v1: cursor ${page.next_cursor} did not move`);
      }
      cursor = page.next_cursor;
    }
  }

  event(name: string): Promise<EventReleased> {
    return this.request('dev.event.v1', { name });
  }

  /** One chunk of a job's log (`logs.tail.v1`). */
  logs(jobIdOrParams: string | LogsTailParams, offset = 0): Promise<LogChunk> {
    const params = typeof jobIdOrParams === 'string' ? { job_id: jobIdOrParams, offset } : jobIdOrParams;
    return this.request('logs.tail.v1', params);
  }

  /**
   * The job's log text as it grows (`logs.follow.v1` over WebSocket), ending once the
   * job is terminal and its log drained. Breaking out of the loop unsubscribes.
   */
  async *follow(jobId: string, offset = 0): AsyncGenerator<string, void, undefined> {
    const subscription = await this.subscribe(jobId, offset);
    try {
      for (;;) {
        const chunk = await subscription.next();
        if (chunk.chunk !== '') yield chunk.chunk;
        if (chunk.eof === true) return;
      }
    } finally {
      subscription.close();
    }
  }

  private async subscribe(jobId: string, offset: number): Promise<Subscription> {
    const endpoint = await this.resolve();
    const url =
      endpoint.kind === 'socket' ? `ws+unix://${endpoint.socketPath}:/` : `ws://${endpoint.host}:${endpoint.port}/`;
    const headers: Record<string, string> = {};
    if (endpoint.kind === 'tcp' && endpoint.token !== undefined) headers.authorization = `Bearer ${endpoint.token}`;
    const socket = new WebSocket(url, { headers });
    const subscription = new Subscription(socket, url);
    await subscription.start({ jsonrpc: '2.0', id: this.nextId++, method: 'logs.follow.v1', params: { job_id: jobId, offset } });
    return subscription;
  }

  stats(): Promise<Stats> {
    return this.request('admin.stats.v1', {});
  }

  maintenance(params: MaintenanceParams = {}): Promise<Maintenance> {
    return this.request('admin.maintenance.v1', params);
  }

  /** Re-enqueues ended jobs (FAILED, CANCELLED, SKIPPED_*) as the next generation. */
  retry(params: RetryParams | string): Promise<Retried> {
    return this.request('dev.retry.v1', typeof params === 'string' ? { job_id: params } : params);
  }

  pause(queue: string): Promise<QueuePaused> {
    return this.request('admin.queue.pause.v1', { queue });
  }

  resume(queue: string): Promise<QueuePaused> {
    return this.request('admin.queue.resume.v1', { queue });
  }

  recurringSet(params: RecurringSetParams): Promise<RecurringSet> {
    return this.request('dev.recurring.set.v1', params);
  }

  recurringList(): Promise<RecurringList> {
    return this.request('dev.recurring.list.v1', {});
  }

  recurringDelete(name: string): Promise<RecurringDeleted> {
    return this.request('dev.recurring.delete.v1', { name });
  }

  /** Reads `config.toml` again (the daemon's `admin.reload.v1`). */
  reload(): Promise<Reloaded> {
    return this.request('admin.reload.v1', {});
  }

  /** A one-time dashboard sign-in URL (`admin.ui_login.v1`). */
  uiLogin(): Promise<UiLogin> {
    return this.request('admin.ui_login.v1', {});
  }

  /** The daemon's OpenRPC document; MethodNotFoundError from a daemon without it. */
  discover(): Promise<OpenRpcDocument> {
    return this.request('rpc.discover', {});
  }
}

/** The notifications still to read, at most this many (the daemon sends 64 KiB chunks). */
const FOLLOW_BUFFER_MAX = 1024;

/** One `logs.follow.v1` subscription: the WebSocket, its queue of chunks, its end. */
class Subscription {
  private readonly chunks: FollowChunk[] = [];
  private failure: SemanticaError | undefined;
  private waiter: (() => void) | undefined;
  private id: unknown;
  private ended = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly url: string,
  ) {}

  start(request: { id: number; [key: string]: unknown }): Promise<void> {
    return new Promise((resolve, reject) => {
      let accepted = false;
      const fail = (error: SemanticaError): void => {
        this.failure ??= error;
        if (!accepted) reject(error);
        this.wake();
      };
      this.socket.on('open', () => this.socket.send(JSON.stringify(request)));
      this.socket.on('unexpected-response', (_request, response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () => {
          try {
            const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { error?: WireError };
            fail(body.error ? errorFromWire(body.error) : new TransportError(`${this.url}: HTTP ${response.statusCode}`));
          } catch {
            fail(new TransportError(`${this.url}: HTTP ${response.statusCode}`));
          }
          this.socket.terminate();
        });
      });
      this.socket.on('message', (data) => {
        let message: { id?: unknown; result?: unknown; error?: WireError; params?: { subscription?: unknown; result?: FollowChunk } };
        try {
          message = JSON.parse(String(data)) as typeof message;
        } catch {
          fail(new TransportError(`${this.url}: not JSON: ${String(data).slice(0, 200)}`));
          return;
        }
        if (message.id === request.id) {
          if (message.error) return fail(errorFromWire(message.error));
          accepted = true;
          this.id = message.result;
          resolve();
          return;
        }
        const chunk = message.params?.result;
        if (message.params?.subscription !== this.id || chunk === undefined) return;
        if (this.chunks.length >= FOLLOW_BUFFER_MAX) {
          // Backpressure: the reader lags; stop reading until it catches up.
          this.socket.pause();
        }
        this.chunks.push(chunk);
        if (chunk.eof === true) this.ended = true;
        this.wake();
      });
      this.socket.on('error', (error) => {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ECONNREFUSED' || code === 'ENOENT') {
          fail(new DaemonNotRunningError(`${code} on ${this.url}`, error));
        } else {
          fail(new TransportError(`${this.url}: ${error.message}`, error));
        }
      });
      this.socket.on('close', () => {
        if (!this.ended) fail(new TransportError(`${this.url}: closed before the log ended`));
      });
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  async next(): Promise<FollowChunk> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        if (this.chunks.length < FOLLOW_BUFFER_MAX / 2 && this.socket.isPaused) this.socket.resume();
        return chunk;
      }
      if (this.failure !== undefined) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  close(): void {
    if (!this.ended && this.socket.readyState === WebSocket.OPEN && this.id !== undefined) {
      this.socket.send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'logs.unfollow.v1', params: [this.id] }));
    }
    this.ended = true;
    this.socket.close();
  }
}
