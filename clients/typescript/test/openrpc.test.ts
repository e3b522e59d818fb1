import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { Client, METHODS } from '@semantica/client';

import { PACKAGE_ROOT } from './daemon.js';

const OPENRPC_PATH = path.join(PACKAGE_ROOT, '../../docs/openrpc.json');

test('every method of docs/openrpc.json has a client method', () => {
  assert.ok(fs.existsSync(OPENRPC_PATH), `${OPENRPC_PATH} is missing: the daemon's OpenRPC document must be committed there`);
  const document = JSON.parse(fs.readFileSync(OPENRPC_PATH, 'utf8')) as { methods?: Array<{ name?: unknown }> };
  assert.ok(Array.isArray(document.methods) && document.methods.length > 0, 'openrpc.json has no methods');
  const table: Record<string, string> = METHODS;
  const missing = document.methods.map((m) => String(m.name)).filter((name) => table[name] === undefined);
  assert.deepEqual(missing, [], `methods of openrpc.json without a client method (add them to METHODS): ${missing.join(', ')}`);
});

test('every entry of the method table names a method of Client', () => {
  for (const [wire, method] of Object.entries(METHODS)) {
    assert.equal(typeof (Client.prototype as unknown as Record<string, unknown>)[method], 'function', `${wire} → ${method}`);
  }
});
