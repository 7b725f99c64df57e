// Smoke test of the benchmark suite: every scenario for 1 second, 1 round, in one
// process (`node bench/run.js --smoke`), so the scripts keep working. The
// figures are not judged: each scenario must run and print its table, and
// websocket-relay, grpc-unary and h2c-to-h1 must report numbers and no errors.
// Needs dist/ (CI builds before testing); uses nginx and h2load when installed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUN = join(REPO, 'bench', 'run.js');
const MAIN_JS = join(REPO, 'dist', 'main.js');

// Each scenario's heading, as printed by bench/run.js, and a header cell of its table.
const SCENARIOS: Array<[name: string, heading: string, header: string]> = [
  ['throughput', '## Throughput', '| target | req/s |'],
  ['latency', '## Latency at a fixed rate', '| target | achieved req/s |'],
  ['access-log', '## Access log on', '| target | load generator | req/s |'],
  ['fail-fast', '## Fail-fast', '| mode | load generator | req/s |'],
  ['retries', '## Retries', '| target | req/s |'],
  ['memory', '## Memory', '| target | RSS idle MB |'],
  ['young-generation', '## Young generation', '| target | req/s |'],
  ['websocket', '## WebSocket echo', '| target | messages/s |'],
  ['websocket-relay', '## WebSocket relay', '| mode | target | messages/s |'],
  ['grpc-unary', '## gRPC unary', '| target | calls/s |'],
  ['h2c-to-h1', '## h2c to HTTP/1.1', '| mode | target | req/s |'],
  ['route-scale', '## Route scale', '| routes | req/s |'],
];

// h2c-to-h1 needs h2load (Debian nghttp2-client); without it the scenario says "not available".
const H2LOAD = spawnSync(process.env.BENCH_H2LOAD || 'h2load', ['--version'], { stdio: 'ignore', timeout: 5000 }).status === 0;

const out = mkdtempSync(join(tmpdir(), 'outrigger-bench-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [RUN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`bench smoke did not finish within ${timeoutMs} ms\n${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

// The websocket-relay scenario's figures exist and are numbers (not judged: a smoke run is
// not a measurement): for each mode, messages/s for direct, Outrigger and the byte tunnel,
// CPU per message for the two proxies, and every echo in order.
function checkWebSocketRelayNumbers(file: string): void {
  const record = JSON.parse(readFileSync(file, 'utf8')) as { summary: Record<string, Record<string, Record<string, unknown>>> };
  for (const mode of ['ping-pong', 'pipelined']) {
    const s = record.summary[mode];
    expect(s, `websocket-relay: no ${mode} summary in ${file}`).toBeDefined();
    for (const target of ['direct', 'outrigger', 'tunnel-ref']) {
      const t = (s as Record<string, Record<string, unknown>>)[target];
      expect(t?.supported, `websocket-relay ${mode} ${target}: ${JSON.stringify(t)}`).toBe(true);
      expect(t?.messagesPerSecond, `websocket-relay ${mode} ${target}: messages/s`).toBeGreaterThan(0);
      expect(t?.orderErrors, `websocket-relay ${mode} ${target}: echoes out of order`).toBe(0);
      if (target !== 'direct') {
        expect(typeof t?.proxyCpuUsPerMessage, `websocket-relay ${mode} ${target}: CPU per message`).toBe('number');
        expect(Number.isFinite(t?.proxyCpuUsPerMessage), `websocket-relay ${mode} ${target}: CPU per message is finite`).toBe(true);
      }
    }
  }
}

type Summary = Record<string, Record<string, unknown>>;
const summaryOf = (file: string): Record<string, unknown> => (JSON.parse(readFileSync(file, 'utf8')) as { summary: Record<string, unknown> }).summary;

// grpc-unary: calls/s for direct and Outrigger, every call OK and echoed right, and the
// proxy's CPU per call a finite number.
function checkGrpcUnaryNumbers(file: string): void {
  const s = summaryOf(file) as Summary;
  for (const target of ['direct', 'outrigger']) {
    const t = s[target];
    expect(t?.supported, `grpc-unary ${target}: ${JSON.stringify(t)}`).toBe(true);
    expect(t?.callsPerSecond, `grpc-unary ${target}: calls/s`).toBeGreaterThan(0);
    expect(t?.errors, `grpc-unary ${target}: calls not OK`).toBe(0);
    expect(t?.mismatches, `grpc-unary ${target}: wrong answers`).toBe(0);
  }
  expect(Number.isFinite(s.outrigger?.proxyCpuUsPerCall), 'grpc-unary outrigger: CPU per call is a finite number').toBe(true);
}

// h2c-to-h1: with h2load, req/s for both targets in both modes, every response 2xx, and
// Outrigger's CPU per request a finite number; without it, every row "not available".
function checkH2cToH1Numbers(file: string): void {
  const s = summaryOf(file) as Record<string, Summary>;
  for (const mode of ['h2c', 'h1']) {
    for (const target of ['direct', 'outrigger']) {
      const t = s[mode]?.[target];
      if (!H2LOAD) {
        expect(t?.available, `h2c-to-h1 ${mode} ${target} without h2load: ${JSON.stringify(t)}`).toBe(false);
        continue;
      }
      expect(t?.supported, `h2c-to-h1 ${mode} ${target}: ${JSON.stringify(t)}`).toBe(true);
      expect(t?.rps, `h2c-to-h1 ${mode} ${target}: req/s`).toBeGreaterThan(0);
      expect(t?.errors, `h2c-to-h1 ${mode} ${target}: errors or responses not 2xx`).toBe(0);
      if (target === 'outrigger') expect(Number.isFinite(t?.proxyCpuUsPerReq), `h2c-to-h1 ${mode} outrigger: CPU per request is finite`).toBe(true);
    }
  }
}

describe('bench smoke (node bench/run.js --smoke)', () => {
  it(
    'runs every scenario for 1 second and prints its table',
    async () => {
      if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` before this test`);
      const { code, stdout, stderr } = await runBench(['--smoke', '--out', out], 170_000);
      expect(code, `bench exited with ${code}\n${stderr.slice(-4000)}`).toBe(0);
      expect(stdout).not.toContain('FAILED');
      for (const [name, heading, header] of SCENARIOS) {
        const at = stdout.indexOf(heading);
        expect(at, `${name}: heading "${heading}" missing from stdout`).toBeGreaterThanOrEqual(0);
        const next = stdout.indexOf('\n## ', at + 1);
        const section = stdout.slice(at, next === -1 ? undefined : next);
        expect(section, `${name}: table missing`).toContain(header);
        expect(section, `${name}: table has no rows`).toMatch(/\n\|---[^\n]*\n\| [^\n]+\|/);
      }
      const files = readdirSync(out);
      for (const [name] of SCENARIOS) {
        expect(files.some((f) => f.startsWith(`${name}-smoke-`) && f.endsWith('.json')), `${name}: no JSON results in ${out}`).toBe(true);
      }
      expect(files).toContain('latest-smoke.json');
      const fileOf = (name: string): string => join(out, files.find((f) => f.startsWith(`${name}-smoke-`) && f.endsWith('.json')) as string);
      checkWebSocketRelayNumbers(fileOf('websocket-relay'));
      checkGrpcUnaryNumbers(fileOf('grpc-unary'));
      checkH2cToH1Numbers(fileOf('h2c-to-h1'));
    },
    180_000,
  );
});
