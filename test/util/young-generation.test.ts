// The start-up warning for V8's minimum young generation: the rule on its own, then the
// real CLI inside a real cgroup memory limit (where the machine lets the test make one).
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOW_MEMORY_LIMIT_BYTES, RECOMMENDED_SEMI_SPACE_MB, youngGenerationWarning } from '../../src/util/young-generation.js';
import { MAIN_JS, requireMain } from '../helpers/cli.js';
import { useCleanup } from '../helpers/cleanup.js';

const MiB = 1024 * 1024;
const facts = (constrainedMemory: number, execArgv: string[] = [], nodeOptions?: string) => ({ constrainedMemory, execArgv, nodeOptions });

describe('youngGenerationWarning', () => {
  it('warns at and below 512 MiB without the flag, naming the limit and the flag', () => {
    for (const limit of [64 * MiB, 256 * MiB, LOW_MEMORY_LIMIT_BYTES]) {
      const w = youngGenerationWarning(facts(limit));
      expect(w).toContain(`memory limit ${Math.round(limit / MiB)} MiB`);
      expect(w).toContain(`--max-semi-space-size=${RECOMMENDED_SEMI_SPACE_MB}`);
    }
  });

  it('says nothing above 512 MiB or without a limit (0, or the huge number Node reports)', () => {
    for (const limit of [LOW_MEMORY_LIMIT_BYTES + 1, 1024 * MiB, 0, 2 ** 64]) expect(youngGenerationWarning(facts(limit))).toBeNull();
  });

  it('says nothing when the flag is on the command line or in NODE_OPTIONS, in either spelling', () => {
    expect(youngGenerationWarning(facts(256 * MiB, ['--max-semi-space-size=8']))).toBeNull();
    expect(youngGenerationWarning(facts(256 * MiB, [], '--max-semi-space-size=16'))).toBeNull();
    expect(youngGenerationWarning(facts(256 * MiB, [], '--enable-source-maps --max-semi-space-size 16'))).toBeNull();
    // Other flags, or a longer flag with the same start, do not count.
    expect(youngGenerationWarning(facts(256 * MiB, ['--max-old-space-size=200'], '--max-semi-space-sizes=1'))).not.toBeNull();
  });
});

// cgroup v1's memory controller, as on the machines CI runs on (root, /sys/fs/cgroup/memory).
const CGROUP_ROOT = '/sys/fs/cgroup/memory';
function cgroupWritable(): boolean {
  try {
    accessSync(CGROUP_ROOT, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!cgroupWritable())('the CLI inside a 256 MiB cgroup memory limit', () => {
  // Closed in reverse: node first, then its config, then the (by then empty) cgroup.
  const cleanup = useCleanup();

  async function startLimited(nodeOptions: string | undefined): Promise<Array<Record<string, unknown>>> {
    requireMain();
    const group = join(CGROUP_ROOT, `outrigger-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(group);
    cleanup({ close: () => rmdirSync(group) });
    writeFileSync(join(group, 'memory.limit_in_bytes'), String(256 * MiB));
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-ygen-'));
    cleanup({ close: () => rmSync(dir, { recursive: true, force: true }) });
    const config = join(dir, 'outrigger.yaml');
    writeFileSync(config, 'listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\nroutes: []\n');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_OPTIONS;
    delete env.OUTRIGGER_LOG_LEVEL;
    if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
    // The shell joins the cgroup, then becomes node: the limit holds from the first instruction.
    const child = spawn('sh', ['-c', `echo $$ > ${group}/cgroup.procs && exec "$0" "$@"`, process.execPath, MAIN_JS, '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    cleanup({
      close: async () => {
        child.kill('SIGKILL');
        await exited;
      },
    });
    const logs: Array<Record<string, unknown>> = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`no "outrigger listening" line within 20 s; stderr: ${stderr}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'outrigger listening') {
            clearTimeout(timer);
            // The warning follows the listening line in the same flush.
            setTimeout(resolve, 200);
          }
        }
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}; stderr: ${stderr}`)));
    });
    return logs;
  }

  it('logs node_heap_warning at warn without the flag', async () => {
    const logs = await startLimited(undefined);
    const w = logs.find((l) => l.event === 'node_heap_warning');
    expect(w, JSON.stringify(logs)).toBeDefined();
    expect(w?.level).toBe('warn');
    expect(w?.memoryLimitBytes).toBe(256 * MiB);
    expect(w?.msg).toContain('--max-semi-space-size=16');
  });

  it('is quiet with --max-semi-space-size in NODE_OPTIONS, as the image sets it', async () => {
    const logs = await startLimited(`--max-semi-space-size=${RECOMMENDED_SEMI_SPACE_MB}`);
    expect(logs.some((l) => l.msg === 'outrigger listening')).toBe(true);
    expect(logs.find((l) => l.event === 'node_heap_warning')).toBeUndefined();
  });
});
