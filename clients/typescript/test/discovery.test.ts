import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { Client, DaemonNotRunningError, UnauthorizedError } from '@semantica/client';

import { startDaemon, tempHome, type Daemon } from './daemon.js';

let daemon: Daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon?.stop();
});

function withEnv<T>(vars: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(vars)) {
    saved[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  return body().finally(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
}

test('no arguments: SEMANTICA_HOME, daemon.json, then the Unix socket without a token', async () => {
  await withEnv({ SEMANTICA_HOME: daemon.home, SEMANTICA_URL: undefined, SEMANTICA_TOKEN: undefined }, async () => {
    const client = new Client();
    try {
      const stats = await client.stats();
      assert.equal(stats.system.version, daemon.info.version);
    } finally {
      client.close();
    }
  });
});

test('a URL with a token option uses TCP', async () => {
  const client = new Client({ url: daemon.url, token: daemon.token, home: tempHome() });
  try {
    assert.ok(Array.isArray((await client.stats()).queues));
  } finally {
    client.close();
  }
});

test('SEMANTICA_URL takes the token from $SEMANTICA_HOME/token', async () => {
  await withEnv({ SEMANTICA_HOME: daemon.home, SEMANTICA_URL: daemon.url, SEMANTICA_TOKEN: undefined }, async () => {
    const client = new Client();
    try {
      assert.equal((await client.recurringList()).items.length, 0);
    } finally {
      client.close();
    }
  });
});

test('a wrong token is an UnauthorizedError', async () => {
  const client = new Client({ url: daemon.url, token: 'not-the-token' });
  try {
    await assert.rejects(client.stats(), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.equal(error.code, 4010);
      assert.equal(error.kind, 'unauthorized');
      return true;
    });
  } finally {
    client.close();
  }
});

function notRunning(error: unknown): boolean {
  assert.ok(error instanceof DaemonNotRunningError, String(error));
  assert.match(error.message, /semantica serve/);
  assert.equal(error.kind, 'daemon_not_running');
  return true;
}

test('no daemon.json is DaemonNotRunningError with the hint', async () => {
  const client = new Client({ home: tempHome() });
  await assert.rejects(client.stats(), notRunning);
});

test('a daemon.json whose socket is gone is DaemonNotRunningError', async () => {
  const home = tempHome();
  const socket = path.join(home, 'semantica.sock');
  fs.writeFileSync(path.join(home, 'daemon.json'), JSON.stringify({ pid: 1, rpc_addr: '127.0.0.1:1', socket, version: '0' }));
  const client = new Client({ home });
  await assert.rejects(client.stats(), notRunning);
});

test('a refused TCP connection is DaemonNotRunningError', async () => {
  // Port 1 on loopback: nothing listens there.
  const client = new Client({ url: 'http://127.0.0.1:1', token: 't' });
  await assert.rejects(client.stats(), notRunning);
});
