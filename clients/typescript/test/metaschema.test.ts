// docs/openrpc.json against the official OpenRPC meta-schema (@open-rpc/meta-schema),
// judged by a JSON Schema validator (ajv): a document that other OpenRPC tools would
// refuse fails here, and so does a broken copy of it (the check can fail at all).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';

import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';

import { PACKAGE_ROOT } from './daemon.js';

const OPENRPC_PATH = path.join(PACKAGE_ROOT, '../../docs/openrpc.json');
// The packages' typings declare the documents' types only, not the schema values they export.
const require = createRequire(import.meta.url);
// ajv-formats is CommonJS: its plugin is the module's `default` seen from ESM.
const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv };
const { openrpcDocument } = require('@open-rpc/meta-schema') as { openrpcDocument: Record<string, unknown> };
// The JSON Schema dialect the OpenRPC meta-schema refers to (`https://meta.json-schema.tools`).
const { jsonSchema } = require('@json-schema-tools/meta-schema') as { jsonSchema: Record<string, unknown> };

function validator(): (document: unknown) => ErrorObject[] {
  // Both schemas name their own dialect (`https://meta.json-schema.tools/`), a draft-07
  // JSON Schema that ajv judges as draft-07; `strict: false` lets its extra keywords be.
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(ajv); // `uri`, `regex`, … are checked, not ignored
  const { $schema: _ownDialect, ...dialect } = jsonSchema;
  ajv.addSchema(dialect);
  ajv.addSchema({ ...dialect, $id: 'https://meta.json-schema.tools' });
  const { $schema: _dialect, ...schema } = openrpcDocument;
  const validate = ajv.compile(schema);
  return (document) => (validate(document) ? [] : [...(validate.errors ?? [])]);
}

function describe(errors: ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('\n');
}

function document(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(OPENRPC_PATH, 'utf8')) as Record<string, unknown>;
}

test('docs/openrpc.json is a valid OpenRPC document by the official meta-schema', () => {
  const errors = validator()(document());
  assert.deepEqual(errors, [], `docs/openrpc.json breaks the OpenRPC meta-schema:\n${describe(errors)}`);
});

test('a broken copy of docs/openrpc.json fails the meta-schema', () => {
  const validate = validator();
  const breakages: Array<[string, (doc: Record<string, unknown>) => void]> = [
    ['no info', (doc) => { delete doc.info; }],
    ['an unknown OpenRPC version', (doc) => { doc.openrpc = '9.9.9'; }],
    ['a method without a name', (doc) => { delete (doc.methods as Array<Record<string, unknown>>)[0]!.name; }],
    ['params that are no list', (doc) => { (doc.methods as Array<Record<string, unknown>>)[0]!.params = {}; }],
    ['an unknown top-level field', (doc) => { doc.surprise = true; }],
  ];
  for (const [name, breakIt] of breakages) {
    const copy = document();
    breakIt(copy);
    assert.notDeepEqual(validate(copy), [], `${name}: the meta-schema accepted a broken document`);
  }
});
