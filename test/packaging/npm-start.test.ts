// `npm start` and `npm run demo` as people run them, stopped through npm's PID.
//
// npm runs a script as `sh -c '<script>'` and forwards SIGTERM/SIGINT only to that child.
// Unless the script execs, the shell dies of the signal and node, never signalled, is left
// running with its ports. The scripts exec, so npm's child is node; and dist/main.js, when
// npm started it, also drains and exits once its parent is gone (npm killed with SIGKILL).
//
// The real scripts are run, with the repository's package.json, but `--ignore-scripts`
// skips prestart/predemo (a tsc build that would rewrite dist/ under the other tests) and
// the config is a temporary file on 127.0.0.1 ephemeral ports (`npm start -- --config F`
// appends a second --config, which wins; the demo takes OUTRIGGER_CONFIG).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';

const REPO = resolve('.');
const linux = process.platform === 'linux';

let dir: string;
let configPath: string;

beforeAll(() => {
  if (!existsSync(join(REPO, 'dist/main.js'))) throw new Error('dist/main.js is missing: run `npm run build` before these tests');
  dir = mkdtempSync(join(tmpdir(), 'outrigger-npm-start-'));
  configPath = join(dir, 'outrigger.yaml');
  writeFileSync(
    configPath,
    [
      'listen: 127.0.0.1:0',
      'admin: { listen: 127.0.0.1:0 }',
      'status: { listen: 127.0.0.1:0 }',
      'metrics: { listen: 127.0.0.1:0 }',
      'log: { level: debug }',
      'drain: { delay: 200ms, timeout: 2s }',
      'routes: []',
      '',
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every process this file started: npm's process group and the node under it. */
const started: Array<{ npm: ChildProcess; nodePid?: number }> = [];
afterEach(async () => {
  for (const s of started.splice(0)) {
    const running = s.npm.exitCode === null && s.npm.signalCode === null;
    const gone = running ? new Promise((r) => s.npm.once('exit', r)) : Promise.resolve();
    // npm was started as its own process group (detached), which a node left behind by a
    // failed test is still in.
    try {
      process.kill(-(s.npm.pid as number), 'SIGKILL');
    } catch {
      // the group is empty
    }
    if (s.nodePid !== undefined && alive(s.nodePid)) process.kill(s.nodePid, 'SIGKILL');
    await gone;
  }
});

/** Whether pid is a running process (a zombie, exited but not yet reaped, is not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pids whose parent is ppid, from /proc. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
};

function refuses(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolvePromise(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolvePromise(err.code === 'ECONNREFUSED'));
  });
}

interface Run {
  npm: ChildProcess;
  nodePid: number;
  /** npm's own children when the proxy was up: [nodePid] when the script execs. */
  npmChildren: number[];
  port: number;
  logs: () => Array<Record<string, unknown>>;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `npm <args>` in the repository, as its own process group, until the proxy listens. */
async function npmRun(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  delete env.OUTRIGGER_LOG_LEVEL;
  delete env.OUTRIGGER_ADMIN_TOKEN;
  if (!('OUTRIGGER_CONFIG' in extraEnv)) delete env.OUTRIGGER_CONFIG;
  const npm = spawn('npm', [...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const entry: { npm: ChildProcess; nodePid?: number } = { npm };
  started.push(entry);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => npm.once('exit', (code, signal) => r({ code, signal })));
  let out = '';
  let partial = '';
  const logs: Array<Record<string, unknown>> = [];
  const onData = (c: Buffer) => {
    out += c.toString();
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  };
  npm.stdout?.on('data', onData);
  npm.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const listening = await waitFor(
    () => {
      if (npm.exitCode !== null || npm.signalCode !== null) throw new Error(`npm ${args.join(' ')} exited before the proxy listened:\n${out}`);
      return logs.find((l) => l.msg === 'outrigger listening');
    },
    { timeout: 20_000, interval: 20, what: `"outrigger listening" from npm ${args.join(' ')}` },
  );
  const port = Number(String(listening.listen).split(':').pop());
  // The node running dist/: npm's child, or its grandchild under a `sh -c` that did not exec.
  const npmChildren = childrenOf(npm.pid as number);
  const nodePid = [...npmChildren, ...npmChildren.flatMap(childrenOf)].find((pid) => cmdline(pid).some((a) => a.startsWith('dist/')));
  if (nodePid === undefined) throw new Error(`no node process under npm (children ${npmChildren.join(' ')}):\n${out}`);
  entry.nodePid = nodePid;
  return { npm, nodePid, npmChildren, port, logs: () => logs, output: () => out, exited };
}

/** The script execs: npm's only child is node itself, not a shell that would swallow the signal. */
function expectExec(run: Run): void {
  expect(run.npmChildren, `npm's children (${run.npmChildren.map((p) => cmdline(p).join(' ')).join('; ')}) should be just the node process ${run.nodePid}`).toEqual([run.nodePid]);
}

async function expectStopped(run: Run, what: string): Promise<void> {
  await waitFor(() => refuses(run.port), { timeout: 10_000, interval: 50, what: `the proxy port to refuse connections after ${what}` });
  await waitFor(() => !alive(run.nodePid), { timeout: 10_000, interval: 50, what: `the node process to exit after ${what}` });
}

describe.skipIf(!linux)('npm start, stopped through npm', () => {
  it('SIGTERM to the npm PID drains the proxy and exits', async () => {
    const run = await npmRun(['start', '--ignore-scripts', '--', '--config', configPath]);
    expect(cmdline(run.nodePid)).toEqual(['node', 'dist/main.js', '--config', 'config/outrigger.yaml', '--config', configPath]);
    expect(await refuses(run.port)).toBe(false);
    const t0 = Date.now();
    process.kill(run.npm.pid as number, 'SIGTERM');
    await expectStopped(run, 'SIGTERM to npm');
    // npm waits for its child, so npm's own exit means the proxy is gone too.
    const npmExit = await run.exited;
    expect(npmExit.code, run.output()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(run.logs().find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
    expect(run.logs().some((l) => l.msg === 'drained')).toBe(true);
    expectExec(run);
  });

  it('Ctrl-C (SIGINT to the process group) drains once: the copy npm forwards is not a second signal', async () => {
    const run = await npmRun(['start', '--ignore-scripts', '--', '--config', configPath]);
    process.kill(-(run.npm.pid as number), 'SIGINT');
    await expectStopped(run, 'SIGINT to the group');
    expect((await run.exited).code, run.output()).toBe(0);
    const logs = run.logs();
    expect(logs.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGINT' });
    expect(logs.some((l) => l.msg === 'second signal: exiting now'), run.output()).toBe(false);
    expect(logs.some((l) => l.msg === 'drained')).toBe(true);
    expectExec(run);
  });

  it('SIGKILL to npm (no signal passed on): the proxy notices its parent is gone and exits', async () => {
    const run = await npmRun(['start', '--ignore-scripts', '--', '--config', configPath]);
    process.kill(run.npm.pid as number, 'SIGKILL');
    await run.exited;
    await expectStopped(run, 'SIGKILL to npm');
    expect(run.logs().some((l) => l.msg === 'the parent process (npm) exited: shutting down'), run.output()).toBe(true);
  });
});

describe.skipIf(!linux)('npm run demo, stopped through npm', () => {
  it('SIGTERM to the npm PID stops the demo proxy and its upstream', async () => {
    const run = await npmRun(['run', 'demo', '--ignore-scripts'], { OUTRIGGER_CONFIG: configPath, DEMO_UPSTREAM_PORT: '0' });
    expect(cmdline(run.nodePid)).toEqual(['node', 'dist/demo/run-demo.js']);
    process.kill(run.npm.pid as number, 'SIGTERM');
    await expectStopped(run, 'SIGTERM to npm');
    expect((await run.exited).code, run.output()).toBe(0);
    expectExec(run);
  });
});
