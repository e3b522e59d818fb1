import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Client,
  ConflictError,
  METHODS,
  MethodNotFoundError,
  NotFoundError,
  ValidationError,
  isTimedOut,
  type EnqueueParams,
  type Job,
} from '@semantica/client';

import { startDaemon, type Daemon } from './daemon.js';

let daemon: Daemon;
let client: Client;
before(async () => {
  daemon = await startDaemon();
  client = new Client({ home: daemon.home });
});
after(async () => {
  client?.close();
  await daemon?.stop();
});

const UNKNOWN_ID = '67e55044-10b1-426f-9247-bb680e5fe0c8';

function echo(subject: string, text: string, extra: Partial<EnqueueParams> = {}): EnqueueParams {
  return { job_type: 'sh', queue: 'ts', subject_key: subject, exec: { command: 'echo', args: [text] }, ...extra };
}

async function ended(jobId: string): Promise<Job> {
  const result = await client.wait(jobId, 10_000);
  assert.ok(!isTimedOut(result), `job ${jobId} did not end in 10 s`);
  return result;
}

test('a subprocess job runs to DONE, and its log holds its output', async () => {
  const enqueued = await client.enqueue(echo('echo-hi', 'hi'));
  assert.equal(enqueued.deduplicated, false);
  assert.equal(enqueued.generation, 1);
  const job = await ended(enqueued.job_id);
  assert.equal(job.state, 'DONE');
  assert.equal(job.execution_mode, 'SUBPROCESS');
  assert.equal(job.exit_code, 0);
  assert.equal(job.retry_of, null);
  assert.deepEqual(await client.get(enqueued.job_id), job);
  const log = await client.logs(enqueued.job_id);
  assert.equal(log.chunk, 'hi\n');
  assert.equal(log.eof, true);
  assert.equal(log.next_offset, 3);
  const rest = await client.logs({ job_id: enqueued.job_id, offset: 1, limit: 1 });
  assert.deepEqual(rest, { chunk: 'i', next_offset: 2, eof: false });
});

test('follow yields the log text and ends with the job', async () => {
  const { job_id } = await client.enqueue({
    job_type: 'sh',
    queue: 'ts',
    subject_key: 'follow',
    exec: { command: 'sh', args: ['-c', 'echo one; sleep 0.3; echo two'] },
  });
  let text = '';
  for await (const chunk of client.follow(job_id)) text += chunk;
  assert.equal(text, 'one\ntwo\n');
  assert.equal((await client.get(job_id)).state, 'DONE');
});

test('follow over TCP with the token works too, from an offset', async () => {
  const tcp = new Client({ url: daemon.url, token: daemon.token });
  try {
    const { job_id } = await client.enqueue(echo('follow-tcp', 'hello'));
    await ended(job_id);
    let text = '';
    for await (const chunk of tcp.follow(job_id, 2)) text += chunk;
    assert.equal(text, 'llo\n');
  } finally {
    tcp.close();
  }
});

test('breaking out of follow unsubscribes and leaves the job running', async () => {
  const { job_id } = await client.enqueue({
    job_type: 'sh',
    queue: 'ts',
    subject_key: 'follow-break',
    exec: { command: 'sh', args: ['-c', 'echo first; sleep 30'] },
  });
  for await (const chunk of client.follow(job_id)) {
    assert.equal(chunk, 'first\n');
    break;
  }
  assert.equal((await client.get(job_id)).state, 'RUNNING');
  assert.deepEqual(await client.cancel(job_id), { cancelled_count: 1 });
  assert.equal((await ended(job_id)).state, 'CANCELLED');
});

test('follow of an unknown job is a NotFoundError', async () => {
  const iterator = client.follow(UNKNOWN_ID);
  await assert.rejects(iterator.next(), NotFoundError);
});

test('jobs() follows next_cursor across several pages', async () => {
  const jobs = Array.from({ length: 7 }, (_, i): EnqueueParams => ({
    job_type: 'noop',
    queue: 'paging',
    subject_key: `page-${i}`,
    tag: 'paging',
    schedule: { delay_ms: 86_400_000 },
  }));
  const results = await client.enqueueBatch(jobs);
  assert.equal(results.length, 7);
  const first = await client.jobsPage({ filter: { tag: 'paging' }, limit: 3 });
  assert.equal(first.items.length, 3);
  assert.notEqual(first.next_cursor, null);
  const seen: string[] = [];
  for await (const job of client.jobs({ filter: { tag: 'paging', state: ['SCHEDULED'] }, limit: 3 })) seen.push(job.id);
  assert.deepEqual(seen, results.map((r) => r.job_id));
  const descending: string[] = [];
  for await (const job of client.jobs({ filter: { queue: ['paging'] }, sort: 'DESC', limit: 2 })) descending.push(job.id);
  assert.deepEqual(descending, [...seen].reverse());
});

test('cancel ends a waiting job; a second cancel is a ConflictError naming the state', async () => {
  const { job_id } = await client.enqueue({ job_type: 'noop', queue: 'ts', subject_key: 'cancel', schedule: { delay_ms: 86_400_000 } });
  assert.deepEqual(await client.cancel(job_id), { cancelled_count: 1 });
  assert.equal((await client.get(job_id)).state, 'CANCELLED');
  await assert.rejects(client.cancel({ job_id }), (error: unknown) => {
    assert.ok(error instanceof ConflictError);
    assert.equal(error.code, 4002);
    assert.equal(error.state, 'CANCELLED');
    return true;
  });
});

test('a validation error carries the field path', async () => {
  const bad = { job_type: 'sh', queue: 'ts', subject_key: 'bad', exec: { command: 5 } } as unknown as EnqueueParams;
  await assert.rejects(client.enqueue(bad), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.code, 4000);
    assert.equal(error.field, 'exec.command');
    assert.equal(error.kind, 'invalid_format');
    return true;
  });
  const batch = [echo('b0', 'x'), { ...echo('b1', 'x'), max_attempts: 0 }];
  await assert.rejects(client.enqueueBatch(batch), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.index, 1);
    assert.equal(error.field, 'max_attempts');
    return true;
  });
});

test('an unknown job is a NotFoundError', async () => {
  await assert.rejects(client.get(UNKNOWN_ID), (error: unknown) => {
    assert.ok(error instanceof NotFoundError);
    assert.equal(error.code, 4001);
    assert.equal(error.kind, 'not_found');
    return true;
  });
});

test('wait answers timed_out for a job that has not ended', async () => {
  const { job_id } = await client.enqueue({ job_type: 'noop', queue: 'ts', subject_key: 'wait', schedule: { delay_ms: 86_400_000 } });
  const result = await client.wait(job_id, 50);
  assert.ok(isTimedOut(result));
  assert.equal(result.job.state, 'SCHEDULED');
});

test('pause holds a queue; resume lets it run; stats shows it', async () => {
  assert.deepEqual(await client.pause('held'), { queue: 'held', paused: true });
  const { job_id } = await client.enqueue({ job_type: 'noop', queue: 'held', subject_key: 'held' });
  const waited = await client.wait(job_id, 300);
  assert.ok(isTimedOut(waited));
  assert.equal(waited.job.state, 'QUEUED');
  const held = (await client.stats()).queues.find((q) => q.name === 'held');
  assert.equal(held?.paused, true);
  assert.equal(held?.queued, 1);
  assert.deepEqual(await client.resume('held'), { queue: 'held', paused: false });
  assert.equal((await ended(job_id)).state, 'DONE');
});

test('retry re-enqueues a failed job as the next generation with retry_of', async () => {
  const { job_id } = await client.enqueue({ job_type: 'sh', queue: 'ts', subject_key: 'retry', exec: { command: 'false' } });
  const failed = await ended(job_id);
  assert.equal(failed.state, 'FAILED');
  assert.equal(failed.error?.kind, 'exit_code');
  const { results } = await client.retry(job_id);
  assert.equal(results.length, 1);
  const retried = await client.get(results[0]!.job_id);
  assert.equal(retried.retry_of, job_id);
  assert.equal(retried.generation, failed.generation + 1);
  const done = await client.enqueue(echo('retry-done', 'x'));
  await ended(done.job_id);
  await assert.rejects(client.retry({ job_id: done.job_id }), ConflictError);
  const byFilter = await client.retry({ filter: { queue: ['nothing-here'] }, limit: 10 });
  assert.deepEqual(byFilter.results, []);
});

test('recurring set, list and delete', async () => {
  const job = { job_type: 'noop', queue: 'ts', subject_key: 'recurring:nightly' };
  const set = await client.recurringSet({ name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', job });
  assert.equal(set.name, 'nightly');
  assert.ok(typeof set.next_at === 'number' && set.next_at > Date.now());
  const { items } = await client.recurringList();
  assert.deepEqual(items, [
    { name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', job, next_at: set.next_at, last_enqueued_job_id: null },
  ]);
  await assert.rejects(client.recurringSet({ name: 'bad', cron: '0 3 * *', job }), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.field, 'cron');
    return true;
  });
  assert.deepEqual(await client.recurringDelete('nightly'), { deleted: true });
  assert.deepEqual(await client.recurringDelete('nightly'), { deleted: false });
  assert.deepEqual((await client.recurringList()).items, []);
});

test('stats, maintenance and event answer their documented shapes', async () => {
  const stats = await client.stats();
  assert.equal(stats.system.version, daemon.info.version);
  assert.equal(typeof stats.system.uptime_ms, 'number');
  const { job_id } = await client.enqueue({ job_type: 'noop', queue: 'ts', subject_key: 'event', conditions: { wait_for_event: 'saved' } });
  assert.deepEqual(await client.event('saved'), { released_count: 1 });
  assert.equal((await ended(job_id)).state, 'DONE');
  const maintenance = await client.maintenance({ force_vacuum: true });
  assert.equal(maintenance.vacuumed, true);
  assert.equal(typeof maintenance.deleted_jobs, 'number');
  assert.equal(typeof maintenance.db_size_after, 'number');
});

test('reload reads config.toml again', async () => {
  const reloaded = await client.reload();
  assert.equal(reloaded.reloaded, true);
});

test('discover returns the daemon\'s OpenRPC document', async () => {
  const document = await client.discover();
  assert.equal(document.info.version, daemon.info.version);
  const table: Record<string, string> = METHODS;
  const missing = document.methods.map((m) => m.name).filter((name) => table[name] === undefined);
  assert.deepEqual(missing, [], 'methods the daemon serves without a client method');
});
