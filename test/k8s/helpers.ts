// Shared helpers for the Kubernetes packaging tests: paths, a JSON Schema validator, free
// loopback ports, and a real proxy process started from dist/.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ajvModule from 'ajv';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHART = join(REPO, 'helm', 'outrigger');
export const MAIN_JS = join(REPO, 'dist', 'main.js');

export function requireBuild(): void {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` before these tests`);
}

// ------------------------------------------------------------------------------ JSON Schema

export interface SchemaValidator {
  (data: unknown): boolean;
  errors?: unknown[] | null;
}

/** Compiles a draft-07 JSON Schema with ajv (works with ajv 6 and ajv 8). */
export function compileSchema(schema: object): SchemaValidator {
  type AjvLike = { compile(s: object): SchemaValidator };
  type AjvCtor = new (opts: object) => AjvLike;
  let ctor: unknown = (ajvModule as unknown as { default?: unknown }).default ?? ajvModule;
  if (typeof ctor !== 'function') ctor = (ctor as { default?: unknown }).default;
  if (typeof ctor !== 'function') throw new Error('cannot find the Ajv constructor in the "ajv" package');
  const ajv = new (ctor as AjvCtor)({ allErrors: true, strict: false });
  return ajv.compile(schema);
}

// ------------------------------------------------------------------------------ network

/** n distinct free TCP ports on 127.0.0.1 (held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((ok, fail) => {
        s.once('error', fail);
        s.listen(0, '127.0.0.1', () => ok());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((ok) => s.close(() => ok()))));
  }
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET without keep-alive, so no socket outlives the test. */
export function httpGet(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<HttpResult> {
  return new Promise((ok, fail) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close', ...headers }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs}ms`)));
    req.on('error', fail);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

// ------------------------------------------------------------------------------ the proxy

export interface ProxyProcess {
  child: ChildProcess;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts `node dist/main.js --config FILE` and waits until GET /readyz on the admin port is 200. */
export async function startProxy(configFile: string, adminPort: number, timeoutMs = 30_000): Promise<ProxyProcess> {
  requireBuild();
  const child = spawn(process.execPath, [MAIN_JS, '--config', configFile], {
    cwd: REPO,
    env: { ...process.env, OUTRIGGER_LOG_LEVEL: 'warn', OUTRIGGER_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  let exited: number | string | null | undefined;
  const exit = new Promise<void>((ok) =>
    child.once('exit', (code, signal) => {
      exited = code ?? signal;
      ok();
    }),
  );
  const proc: ProxyProcess = {
    child,
    output: () => out,
    stop: async () => {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const killed = await Promise.race([exit.then(() => true), sleep(15_000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`the proxy exited (${String(exited)}) before it was ready:\n${out}`);
    try {
      const r = await httpGet(`http://127.0.0.1:${adminPort}/readyz`, {}, 2_000);
      if (r.status === 200) return proc;
      last = `status ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  await proc.stop();
  throw new Error(`the proxy was not ready within ${timeoutMs}ms (last: ${last}):\n${out}`);
}
