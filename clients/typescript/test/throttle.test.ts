import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { Client, ThrottledError } from '@semantica/client';

/** A fake daemon on loopback: 4003 for the first `throttledCalls` calls, then a result. */
async function fakeDaemon(throttledCalls: number, retryAfterMs: number) {
  const calls: number[] = [];
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      calls.push(Date.now());
      response.setHeader('content-type', 'application/json');
      if (calls.length <= throttledCalls) {
        response.statusCode = 429;
        response.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: 4003, message: 'slow down', data: { kind: 'throttled', retry_after_ms: retryAfterMs } } }));
      } else {
        response.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { released_count: 0 } }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { calls, url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

test('a throttled call is retried after retry_after_ms and then succeeds', async () => {
  const fake = await fakeDaemon(2, 80);
  const client = new Client({ url: fake.url, token: 't' });
  try {
    assert.deepEqual(await client.event('e'), { released_count: 0 });
    assert.equal(fake.calls.length, 3);
    for (let i = 1; i < fake.calls.length; i++) assert.ok(fake.calls[i]! - fake.calls[i - 1]! >= 75, `waited ${fake.calls[i]! - fake.calls[i - 1]!} ms`);
  } finally {
    client.close();
    await fake.close();
  }
});

test('throttling past the bound throws ThrottledError with retryAfterMs', async () => {
  const fake = await fakeDaemon(100, 20);
  const client = new Client({ url: fake.url, token: 't', throttleRetriesMax: 2 });
  try {
    await assert.rejects(client.event('e'), (error: unknown) => {
      assert.ok(error instanceof ThrottledError);
      assert.equal(error.code, 4003);
      assert.equal(error.retryAfterMs, 20);
      return true;
    });
    assert.equal(fake.calls.length, 3, 'one call and two retries');
  } finally {
    client.close();
    await fake.close();
  }
});

test('the default bound is three retries', async () => {
  const fake = await fakeDaemon(100, 5);
  const client = new Client({ url: fake.url, token: 't' });
  try {
    await assert.rejects(client.event('e'), ThrottledError);
    assert.equal(fake.calls.length, 4);
  } finally {
    client.close();
    await fake.close();
  }
});
