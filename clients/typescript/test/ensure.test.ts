import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { DaemonNotRunningError, ensureDaemon, isTimedOut } from '@semantica/client';

import { daemonBinary, tempHome } from './daemon.js';

delete process.env.SEMANTICA_URL;
delete process.env.SEMANTICA_TOKEN;

async function stop(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300; i += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('ensureDaemon starts a daemon only when none answers', async () => {
  const home = tempHome();
  const options = { home, binary: daemonBinary(), env: { SEMANTICA_RPC_ADDR: '127.0.0.1:0', SEMANTICA_WORKERS: '2' } };
  const client = await ensureDaemon(options);
  const pid = (JSON.parse(fs.readFileSync(path.join(home, 'daemon.json'), 'utf8')) as { pid: number }).pid;
  try {
    const { job_id } = await client.enqueue({ job_type: 'noop', queue: 'default', subject_key: 'ensured' });
    const job = await client.wait(job_id, 30_000);
    assert.ok(!isTimedOut(job) && job.state === 'DONE');
    const again = await ensureDaemon(options);
    assert.equal((await again.get(job_id)).state, 'DONE');
    again.close();
    const after = (JSON.parse(fs.readFileSync(path.join(home, 'daemon.json'), 'utf8')) as { pid: number }).pid;
    assert.equal(after, pid, 'a second daemon was started');
  } finally {
    client.close();
    await stop(pid);
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('ensureDaemon says when it cannot start one', async () => {
  const home = tempHome();
  try {
    await assert.rejects(ensureDaemon({ home, binary: path.join(home, 'no-such-semantica') }), (error: unknown) => {
      assert.ok(error instanceof DaemonNotRunningError);
      assert.match(error.message, /cannot start/);
      return true;
    });
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});
