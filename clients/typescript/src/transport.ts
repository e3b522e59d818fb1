/**
 * Finding the daemon and carrying one JSON-RPC call to it over HTTP/1.1 (keep-alive),
 * on the Unix socket or on TCP with a bearer token. Knows nothing of the methods.
 */

import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { DaemonNotRunningError, SemanticaError, TransportError, errorFromWire, type WireError } from './errors.js';
import type { DaemonInfo } from './types.js';

/** The largest answer body read (the daemon's pages stop at 8 MiB of JSON). */
export const RESPONSE_BYTES_MAX = 64 * 1024 * 1024;

/** Where and how to reach the daemon, once resolved. */
export type Endpoint =
  | { kind: 'socket'; socketPath: string }
  | { kind: 'tcp'; host: string; port: number; token: string | undefined };

export interface EndpointOptions {
  /** `http://HOST:PORT`: TCP. Default: env `SEMANTICA_URL`; without either, the Unix socket. */
  url?: string;
  /** Bearer token for TCP. Default: env `SEMANTICA_TOKEN`, then `$SEMANTICA_HOME/token`. */
  token?: string;
  /** Data directory. Default: env `SEMANTICA_HOME`, then `~/.semantica`. */
  home?: string;
  /** The Unix socket, skipping `daemon.json`. */
  socketPath?: string;
}

export function homeDirectory(options: EndpointOptions): string {
  return options.home ?? process.env.SEMANTICA_HOME ?? path.join(os.homedir(), '.semantica');
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as NodeJS.ErrnoException).code : undefined;
}

/** A URL (option or `SEMANTICA_URL`) means TCP; otherwise `daemon.json` names the socket. */
export async function resolveEndpoint(options: EndpointOptions): Promise<Endpoint> {
  const home = homeDirectory(options);
  const url = options.url ?? process.env.SEMANTICA_URL;
  if (url !== undefined && url !== '') {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:') throw new TransportError(`unsupported URL ${url}: use http://HOST:PORT`);
    const token = options.token ?? process.env.SEMANTICA_TOKEN ?? (await readToken(home));
    const port = parsed.port === '' ? 80 : Number(parsed.port);
    return { kind: 'tcp', host: parsed.hostname.replace(/^\[|\]$/g, ''), port, token };
  }
  if (options.socketPath !== undefined) return { kind: 'socket', socketPath: options.socketPath };
  const infoPath = path.join(home, 'daemon.json');
  let text: string;
  try {
    text = await fs.readFile(infoPath, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') throw new DaemonNotRunningError(`no ${infoPath}`, error);
    throw new TransportError(`cannot read ${infoPath}: ${String(error)}`, error);
  }
  const info = JSON.parse(text) as Partial<DaemonInfo>;
  if (typeof info.socket !== 'string') throw new TransportError(`${infoPath} names no socket`);
  return { kind: 'socket', socketPath: info.socket };
}

async function readToken(home: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(home, 'token'), 'utf8')).trim();
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

export function describe(endpoint: Endpoint): string {
  return endpoint.kind === 'socket' ? `socket ${endpoint.socketPath}` : `http://${endpoint.host}:${endpoint.port}`;
}

/** One JSON-RPC call; resolves to `result` or rejects with a typed {@link SemanticaError}. */
export function call(
  agent: http.Agent,
  endpoint: Endpoint,
  id: number,
  method: string,
  params: unknown,
): Promise<unknown> {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method, params: params ?? {} });
  const headers: http.OutgoingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  };
  const target: http.RequestOptions =
    endpoint.kind === 'socket'
      ? { socketPath: endpoint.socketPath }
      : { host: endpoint.host, port: endpoint.port };
  if (endpoint.kind === 'tcp' && endpoint.token !== undefined) headers.authorization = `Bearer ${endpoint.token}`;
  return new Promise((resolve, reject) => {
    const request = http.request({ ...target, agent, method: 'POST', path: '/', headers }, (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > RESPONSE_BYTES_MAX) {
          response.destroy();
          reject(new TransportError(`${method}: answer over ${RESPONSE_BYTES_MAX} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', (error) => reject(new TransportError(`${method}: ${error.message}`, error)));
      response.on('end', () => {
        try {
          resolve(answer(method, response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on('error', (error) => {
      const code = errorCode(error);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') {
        reject(new DaemonNotRunningError(`${code} on ${describe(endpoint)}`, error));
      } else {
        reject(new TransportError(`${method} on ${describe(endpoint)}: ${error.message}`, error));
      }
    });
    request.end(body);
  });
}

/** The `result` of an answer body, whatever its HTTP status (401, 413, 429 carry JSON-RPC errors too). */
function answer(method: string, status: number, text: string): unknown {
  let parsed: { result?: unknown; error?: WireError };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new TransportError(`${method}: HTTP ${status}, not a JSON-RPC answer: ${text.slice(0, 200)}`);
  }
  if (parsed.error !== undefined && parsed.error !== null) {
    if (parsed.error.code === -32601) {
      // jsonrpsee says only "Method not found": name the method and the likely cause.
      const message = `${method}: ${parsed.error.message} (a daemon older than this client?)`;
      throw errorFromWire({ ...parsed.error, message });
    }
    throw errorFromWire(parsed.error);
  }
  if (!('result' in parsed)) throw new TransportError(`${method}: HTTP ${status}, answer without result`);
  return parsed.result;
}

export function isSemanticaError(error: unknown): error is SemanticaError {
  return error instanceof SemanticaError;
}
