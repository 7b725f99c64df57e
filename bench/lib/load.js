// Parent side of the load generator: fork load-worker.js, take CPU snapshots of
// the watched processes right before the load starts and right after it ends.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, pinCpus, rssMB, track } from './proc.js';

const workerPath = fileURLToPath(new URL('./load-worker.js', import.meta.url));

/**
 * Run a bounded load in a child process.
 * opts: load-worker opts ({ url, connections, duration, overallRate, stagger }),
 *       plus watch: { name: pid } (processes to account CPU for),
 *       sampleRss: { name: pid } (sampled every 250 ms; max and samples returned),
 *       worker: path of an alternative worker script (same protocol),
 *       onStart(): called right after the load has been told to go,
 *       cpus: a taskset CPU list for the load generator (e.g. '1'), or undefined.
 * Returns the worker's result plus cpu: { name: { seconds, usPerResponse } }, rss, and
 * generatorCores: the load generator's own CPU over the load, in cores (1 = one core busy the
 * whole time), so a scenario can tell when the generator, not the proxy, is the limit.
 */
export function runLoad(opts) {
  const { watch = {}, sampleRss = {}, worker = workerPath, onStart, cpus, ...workerOpts } = opts;
  return new Promise((resolve, reject) => {
    const child = fork(worker, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    track(child);
    if (cpus !== undefined && !pinCpus(child.pid, cpus)) {
      child.kill('SIGKILL');
      reject(new Error(`could not pin the load generator to CPU ${cpus}`));
      return;
    }
    const hardTimeoutMs = ((workerOpts.duration || 1) + 5) * 1000 + 30000;
    const killer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`load generator did not finish within ${hardTimeoutMs} ms`));
    }, hardTimeoutMs);
    let before = null;
    let generatorBefore = null;
    let generatorT0 = 0n;
    let sampler = null;
    const rss = Object.fromEntries(Object.keys(sampleRss).map((k) => [k, { maxMB: 0, samples: [] }]));
    let settled = false;
    const finish = (fn) => {
      if (settled) return;
      settled = true;
      clearTimeout(killer);
      if (sampler) clearInterval(sampler);
      fn();
    };
    child.on('message', (msg) => {
      if (msg.type === 'ready') {
        before = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
        generatorBefore = cpuSeconds(child.pid);
        generatorT0 = process.hrtime.bigint();
        child.send({ type: 'go', opts: workerOpts });
        const t0 = Date.now();
        if (Object.keys(sampleRss).length) {
          sampler = setInterval(() => {
            for (const [k, pid] of Object.entries(sampleRss)) {
              const mb = rssMB(pid);
              if (mb === null) continue;
              rss[k].samples.push([(Date.now() - t0) / 1000, Math.round(mb * 10) / 10]);
              if (mb > rss[k].maxMB) rss[k].maxMB = mb;
            }
          }, 250);
        }
        if (onStart) onStart();
      } else if (msg.type === 'result') {
        const after = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
        const generatorAfter = cpuSeconds(child.pid);
        const wallS = Number(process.hrtime.bigint() - generatorT0) / 1e9;
        const generatorCores = generatorBefore === null || generatorAfter === null || !wallS ? null : (generatorAfter - generatorBefore) / wallS;
        const result = msg.result;
        const cpu = {};
        for (const k of Object.keys(watch)) {
          const s = before[k] === null || after[k] === null ? null : after[k] - before[k];
          cpu[k] = { seconds: s, usPerResponse: s === null || !result.responses ? null : (s * 1e6) / result.responses };
        }
        finish(() => resolve({ ...result, cpu, rss, generatorCores }));
      } else if (msg.type === 'error') {
        finish(() => reject(new Error(`load generator failed: ${msg.error}`)));
      }
    });
    child.on('exit', (code) => {
      finish(() => reject(new Error(`load generator exited with code ${code} before reporting`)));
    });
  });
}
