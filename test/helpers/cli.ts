// The real CLI (`node dist/main.js`, built by `npm run build`) on a config with ephemeral
// loopback ports, for tests of signals, drain and reload: its JSON log lines parsed, its
// exit observed, and a SIGKILL at cleanup if it is still running.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { waitFor } from './wait.js';

export const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');

export function requireMain(): void {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run npm run build first`);
}

export interface Cli {
  child: ChildProcess;
  url: string;
  adminUrl: string;
  port: number;
  configPath: string;
  /** The file behind configPath when it is a symlink, else configPath. */
  realConfigPath: string;
  /** stdout lines parsed as JSON (pino), in order. */
  logs: Array<Record<string, unknown>>;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  exitCode(): number | string | undefined;
}

export interface CliLaunch {
  /** Environment changes for the child: a string sets the variable, undefined removes it. */
  env?: Record<string, string | undefined>;
  /** The command that runs `node <args>`, in place of node itself: returns [command, argv]. */
  wrap?: (node: string, args: string[]) => [string, string[]];
}

/** Spawns the CLI on a config with ephemeral ports and waits for its "listening" line. */
export async function startCli(cfg: Record<string, unknown>, cleanups: Array<() => Promise<void> | void>, behindSymlink = false, launch: CliLaunch = {}): Promise<Cli> {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-drain-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'outrigger.yaml');
  let realConfigPath = configPath;
  if (behindSymlink) {
    mkdirSync(join(dir, 'real'));
    realConfigPath = join(dir, 'real', 'outrigger.yaml');
    symlinkSync(join('real', 'outrigger.yaml'), configPath);
  }
  writeFileSync(realConfigPath, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, metrics: { listen: '127.0.0.1:0' }, ...cfg }));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.OUTRIGGER_LOG_LEVEL;
  delete env.OUTRIGGER_ADMIN_TOKEN;
  delete env.OUTRIGGER_CONFIG;
  for (const [k, v] of Object.entries(launch.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const args = [MAIN_JS, '--config', configPath];
  const [command, argv] = launch.wrap ? launch.wrap(process.execPath, args) : [process.execPath, args];
  const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let code: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (c, sig) => {
      code = c ?? sig ?? 'unknown';
      resolve(code);
    });
  });
  cleanups.push(async () => {
    if (code !== undefined) return;
    child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  let partial = '';
  const logs: Array<Record<string, unknown>> = [];
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));

  const listening = await waitFor(() => {
    if (code !== undefined) throw new Error(`the proxy exited (${String(code)}) before listening:\n${out}`);
    return logs.find((l) => l.msg === 'outrigger listening');
  }, { timeout: 20_000, interval: 20, what: 'the "outrigger listening" line' });
  const port = Number(String(listening.listen).split(':').pop());
  const adminPort = Number(String(listening.admin).split(':').pop());
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    port,
    configPath,
    realConfigPath,
    logs,
    output: () => out,
    exited,
    exitCode: () => code,
  };
}

