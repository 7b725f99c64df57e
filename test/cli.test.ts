import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The CLI is tested as shipped: dist/main.js, built by `npm run build` (CI builds before tests).
const MAIN = resolve('dist/main.js');
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`outrigger ${args.join(' ')} did not finish: ${stdout}${stderr}`));
    }, opts.timeout ?? 10_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running outrigger; `line` resolves with the first stdout line matching `re`. */
function daemon(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    child,
    exited,
    line: (re: RegExp, timeout = 10_000) =>
      new Promise<string>((resolvePromise, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${re}: ${stdout}${stderr}`)), timeout);
        const check = () => {
          const l = stdout.split('\n').find((x) => re.test(x));
          if (l) {
            clearTimeout(timer);
            child.stdout.off('data', onData);
            resolvePromise(l);
          }
        };
        const onData = (c: Buffer) => {
          stdout += c.toString();
          check();
        };
        child.stdout.on('data', onData);
        check();
      }),
  };
}

/** JSON on stdout, or a failure that shows what the CLI printed instead. */
function jsonOf(r: Run): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`expected JSON on stdout (exit ${r.code}); stdout: ${JSON.stringify(r.stdout)} stderr: ${JSON.stringify(r.stderr)}`);
  }
}

let dir: string;
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const GOOD = `listen: 127.0.0.1:0
admin: { listen: "127.0.0.1:0" }
metrics: { listen: "127.0.0.1:0" }
drain: { delay: 0, timeout: 1s }
upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }
routes:
  - { name: r0, upstream: a }
  - { name: r1, upstream: a, breaker: { name: shared } }
  - { name: r2, upstream: a, breaker: { name: shared } }
`;
const BAD = `upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }
routes:
  - { name: r0, upstream: a }
  - { name: r1, upstream: a, retry: { backoff: { base: fast } } }
  - { name: r2, upstream: a, bogus: 1 }
`;

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error('dist/main.js is missing: run `npm run build` before the CLI tests');
  dir = mkdtempSync(join(tmpdir(), 'outrigger-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('outrigger check', () => {
  it('exits 0 with a one-line summary for a valid config', async () => {
    const p = file('good.yaml', GOOD);
    const r = await run(['check', p]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${p}: OK (3 routes, 1 upstreams, 2 breakers)\n`);
  });

  it('exits 1 and lists every problem with its path', async () => {
    const p = file('bad.yaml', BAD);
    const r = await run(['check', p]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${p}: 2 problems`);
    expect(lines.slice(1).map((l) => l.trim()).sort()).toEqual(['routes[1].retry.backoff.base: expected a duration like "250ms", got "fast"', 'routes[2].bogus: unknown key']);
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 1 for cross-field problems too', async () => {
    const p = file('cross.yaml', `upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\nroutes: [{ name: r0, upstream: b }, { name: r0, upstream: a }]\n`);
    const r = await run(['check', p]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('routes[0].upstream: unknown upstream "b" (known: a)');
    expect(r.stdout).toContain('routes[1].name: duplicate route name "r0" (also routes[0])');
  });

  it('--format json gives a machine-readable verdict', async () => {
    const bad = await run(['check', file('bad2.yaml', BAD), '--format', 'json']);
    expect(bad.code).toBe(1);
    const j = jsonOf(bad) as { valid: boolean; problems: string[] };
    expect(j.valid).toBe(false);
    expect(j.problems).toHaveLength(2);
    const good = await run(['check', '--format=json', file('good2.yaml', GOOD)]);
    expect(good.code).toBe(0);
    expect(jsonOf(good)).toMatchObject({ valid: true, routes: 3, upstreams: 1, breakers: 2, problems: [], warnings: [], hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('reports preset problems as errors and preset conflicts as warnings, exit 0', async () => {
    const up = `upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\n`;
    const bad = await run(['check', file('presets-bad.yaml', `${up}presets: { x: { use: [y] }, y: { use: [x] } }\nroutes: [{ name: r0, upstream: a, use: [nope] }]\n`)]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('presets.y.use[0]: preset cycle "x" → "y" → "x"');
    expect(bad.stdout).toContain('routes[0].use[0]: unknown preset "nope"');
    const p = file('presets-warn.yaml', `${up}routes: [{ name: r0, upstream: a, use: [no-retry, transient] }]\n`);
    const warn = await run(['check', p]);
    expect(warn.code).toBe(0);
    const conflict =
      'routes[0].use[1]: presets.transient.retry.attempts (3) overrides presets.no-retry.retry.attempts (0) from routes[0].use[0]; the later preset wins (set routes[0].retry.attempts to choose explicitly)';
    expect(warn.stdout).toBe(`${p}: OK (1 routes, 1 upstreams, 1 breakers), 1 warning\n  warning: ${conflict}\n`);
    const j = await run(['check', p, '--format', 'json']);
    expect(j.code).toBe(0);
    expect(jsonOf(j)).toMatchObject({ valid: true, problems: [], warnings: [conflict] });
  });

  it('exits 1 for a missing file and 2 for usage errors', async () => {
    const missing = await run(['check', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('cannot read the file');
    expect((await run(['check'])).code).toBe(2);
    expect((await run(['check', 'a.yaml', '--format', 'xml'])).code).toBe(2);
    expect((await run(['check', 'a.yaml', '--nope'])).code).toBe(2);
  });

  it('validates the bundled config', async () => {
    const r = await run(['check', resolve('config/outrigger.yaml')]);
    expect(r.code).toBe(0);
  });
});

describe('outrigger --version and --help', () => {
  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`outrigger ${VERSION}\n`);
  });

  it('--help prints the usage', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage:/);
    expect(r.stdout).toContain('outrigger check FILE');
    expect(r.stdout).toContain('--config FILE');
  });

  it('an unknown argument is a usage error', async () => {
    const r = await run(['--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown argument --bogus');
  });
});

describe('outrigger (run)', () => {
  it('an invalid config at start-up prints the problem list without a stack trace and exits 1', async () => {
    const p = file('bad-run.yaml', BAD);
    const r = await run(['--config', p]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes[1].retry.backoff.base: expected a duration like "250ms", got "fast"');
    expect(r.stderr).toContain('routes[2].bogus: unknown key');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).not.toContain('ConfigError');
  });

  it('takes the config from OUTRIGGER_CONFIG', async () => {
    const r = await run([], { env: { OUTRIGGER_CONFIG: file('bad-env.yaml', BAD) } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('bad-env.yaml');
  });

  it('starts, logs one JSON start-up line, and exits 0 on SIGTERM', async () => {
    const p = file('run.yaml', GOOD);
    const d = daemon(['--config', p]);
    try {
      const line = JSON.parse(await d.line(/outrigger listening/)) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 'info', routes: 3 });
      expect(line.listen).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(line.admin).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(line.metrics).toMatch(/^127\.0\.0\.1:\d+$/);
      const port = Number(String(line.admin).split(':')[1]);
      expect((await fetch(`http://127.0.0.1:${port}/livez`)).status).toBe(200);
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
    } finally {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
    }
  }, 20_000);
});
