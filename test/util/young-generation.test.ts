// The start-up warning for V8's minimum young generation: the rule on its own, then the
// real CLI inside a real cgroup memory limit (where the machine lets the test make one).
import { accessSync, constants, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOW_MEMORY_LIMIT_BYTES, RECOMMENDED_SEMI_SPACE_MB, youngGenerationWarning } from '../../src/util/young-generation.js';
import { type Cli, requireMain, startCli } from '../helpers/cli.js';

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
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    // In reverse: the proxy first, then the (by then empty) cgroup.
    while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
  });

  async function startLimited(nodeOptions: string | undefined): Promise<Cli> {
    requireMain();
    const group = join(CGROUP_ROOT, `outrigger-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(group);
    cleanups.push(() => rmdirSync(group));
    writeFileSync(join(group, 'memory.limit_in_bytes'), String(256 * MiB));
    const cli = await startCli({ routes: [] }, cleanups, false, {
      env: { NODE_OPTIONS: nodeOptions },
      // The shell joins the cgroup, then becomes node: the limit holds from the first instruction.
      wrap: (node, args) => ['sh', ['-c', `echo $$ > ${group}/cgroup.procs && exec "$0" "$@"`, node, ...args]],
    });
    // The warning follows the listening line in the same flush; give a split write time to land.
    await new Promise((resolve) => setTimeout(resolve, 200));
    return cli;
  }

  it('logs node_heap_warning at warn without the flag', async () => {
    const { logs } = await startLimited(undefined);
    const w = logs.find((l) => l.event === 'node_heap_warning');
    expect(w, JSON.stringify(logs)).toBeDefined();
    expect(w?.level).toBe('warn');
    expect(w?.memoryLimitBytes).toBe(256 * MiB);
    expect(w?.msg).toContain('--max-semi-space-size=16');
  });

  it('is quiet with --max-semi-space-size in NODE_OPTIONS, as the image sets it', async () => {
    const { logs } = await startLimited(`--max-semi-space-size=${RECOMMENDED_SEMI_SPACE_MB}`);
    expect(logs.some((l) => l.msg === 'outrigger listening')).toBe(true);
    expect(logs.find((l) => l.event === 'node_heap_warning')).toBeUndefined();
  });
});
