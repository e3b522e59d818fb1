/**
 * The one helper of these tests: a real `semantica serve` on a temp SEMANTICA_HOME and a
 * port picked by the OS, found through SEMANTICA_BIN (CI) or the workspace's target/.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** clients/typescript, from build-test/daemon.js. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const START_MS_MAX = 15_000;
const STOP_MS_MAX = 10_000;

export interface DaemonInfo {
  pid: number;
  rpc_addr: string;
  socket: string;
  version: string;
}

export interface Daemon {
  home: string;
  info: DaemonInfo;
  token: string;
  url: string;
  stop(): Promise<void>;
}

export function daemonBinary(): string {
  const fromEnv = process.env.SEMANTICA_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    // CI names the binary it built: never test a stale one from target/ instead.
    if (!fs.existsSync(fromEnv)) throw new Error(`SEMANTICA_BIN=${fromEnv} does not exist`);
    return fromEnv;
  }
  const candidates = [
    process.env.SEMANTICA_BIN,
    path.join(PACKAGE_ROOT, '../../target/release/semantica'),
    path.join(PACKAGE_ROOT, '../../target/debug/semantica'),
  ].filter((candidate): candidate is string => candidate !== undefined && candidate !== '');
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(
    `no semantica binary: set SEMANTICA_BIN, or build one with \`cargo build --release -p semantica\` ` +
      `(looked at ${candidates.join(', ')})`,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function tempHome(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'semantica-ts-'));
}

export async function startDaemon(): Promise<Daemon> {
  const binary = daemonBinary();
  const home = tempHome();
  const env: NodeJS.ProcessEnv = { ...process.env, SEMANTICA_HOME: home, SEMANTICA_RPC_ADDR: '127.0.0.1:0', RUST_LOG: 'warn' };
  for (const key of ['SEMANTICA_URL', 'SEMANTICA_TOKEN', 'SEMANTICA_SOCKET', 'SEMANTICA_DB_PATH']) delete env[key];
  const child = spawn(binary, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr = (stderr + String(data)).slice(-4000)));
  const infoPath = path.join(home, 'daemon.json');
  const started = Date.now();
  let info: DaemonInfo | undefined;
  while (info === undefined) {
    if (child.exitCode !== null) throw new Error(`semantica serve exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() - started > START_MS_MAX) {
      child.kill('SIGKILL');
      throw new Error(`no ${infoPath} after ${START_MS_MAX} ms: ${stderr}`);
    }
    try {
      info = JSON.parse(fs.readFileSync(infoPath, 'utf8')) as DaemonInfo;
    } catch {
      await sleep(20);
    }
  }
  const token = fs.readFileSync(path.join(home, 'token'), 'utf8').trim();
  return { home, info, token, url: `http://${info.rpc_addr}`, stop: () => stop(child, home) };
}

async function stop(child: ChildProcess, home: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_MS_MAX);
    await exited;
    clearTimeout(timer);
  }
  fs.rmSync(home, { recursive: true, force: true });
}
