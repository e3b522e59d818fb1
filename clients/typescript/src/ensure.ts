/**
 * `ensureDaemon()`: a client of the local daemon, starting `semantica serve` in the
 * background when none answers.
 */

import { spawn } from 'node:child_process';

import { Client, type ClientOptions } from './client.js';
import { DaemonNotRunningError, SemanticaError, TransportError } from './errors.js';
import { homeDirectory } from './transport.js';

/** How long {@link ensureDaemon} waits for a daemon it started to answer (ms). */
export const ENSURE_WAIT_MS = 30_000;

export interface EnsureDaemonOptions extends ClientOptions {
  /** The `semantica` binary. Default: env `SEMANTICA_BIN`, then `semantica` on `PATH`. */
  binary?: string;
  /** Variables added to the started daemon's environment. */
  env?: Record<string, string>;
  /** How long to wait for a started daemon to answer. Default {@link ENSURE_WAIT_MS}. */
  waitMs?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client whose daemon answers a call (an error answer counts), else `undefined`. */
async function answering(options: ClientOptions): Promise<Client | undefined> {
  const client = new Client(options);
  try {
    await client.stats();
    return client;
  } catch (error) {
    if (error instanceof DaemonNotRunningError || error instanceof TransportError) {
      client.close();
      return undefined;
    }
    if (error instanceof SemanticaError) return client;
    client.close();
    throw error;
  }
}

/**
 * A connected {@link Client}, after starting `semantica serve` when none answers. The
 * daemon is found as `new Client(options)` finds it; when none answers and no URL is
 * given (a daemon elsewhere is not ours to start), `binary serve` runs detached, with
 * `SEMANTICA_HOME` set to the data directory and `env` added, and this waits up to
 * `waitMs` for it to answer. Rejects with {@link DaemonNotRunningError} when it cannot.
 */
export async function ensureDaemon(options: EnsureDaemonOptions = {}): Promise<Client> {
  const { binary, env, waitMs, ...clientOptions } = options;
  const found = await answering(clientOptions);
  if (found !== undefined) return found;
  const url = clientOptions.url ?? process.env.SEMANTICA_URL;
  if (url !== undefined && url !== '') {
    throw new DaemonNotRunningError(`nothing answers at ${url}, and a daemon behind a URL is not started from here`);
  }
  const fromEnv = process.env.SEMANTICA_BIN;
  const program = binary ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'semantica');
  const child = spawn(program, ['serve'], {
    env: { ...process.env, ...env, SEMANTICA_HOME: homeDirectory(clientOptions) },
    stdio: 'ignore',
    detached: true, // a process group of its own: it outlives this process
  });
  let failure: Error | undefined;
  let exited: number | null | undefined;
  child.on('error', (error) => {
    failure = error;
  });
  child.on('exit', (code) => {
    exited = code;
  });
  child.unref();
  const wait = waitMs ?? ENSURE_WAIT_MS;
  const deadline = Date.now() + wait;
  while (Date.now() < deadline) {
    await sleep(50);
    if (failure !== undefined) {
      throw new DaemonNotRunningError(`cannot start \`${program} serve\`: ${failure.message}`, failure);
    }
    const client = await answering(clientOptions);
    if (client !== undefined) return client;
    // 2: another daemon holds the home (one started beside us), which answers soon.
    if (exited !== undefined && exited !== 2) {
      throw new DaemonNotRunningError(`\`${program} serve\` exited with code ${String(exited)}`);
    }
  }
  child.kill();
  throw new DaemonNotRunningError(`\`${program} serve\` did not answer within ${wait} ms`);
}
