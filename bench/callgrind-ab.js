// Instructions per proxied request, counted by valgrind's callgrind (deterministic, so a
// small difference between two builds shows through the machine's noise): the proxy's
// total user-space instructions for N1 and for N2 keep-alive requests through the bench's
// policy config, the difference divided by N2 - N1.
//   node bench/callgrind-ab.js [dist/main.js of build A] [dist/main.js of build B] ... [dispatch-ref]
// `dispatch-ref` counts the dispatch-min reference forwarder (lib/ref-dispatch.js) instead.
import { resolve } from 'node:path';
import { startCountUpstream, startUnderCallgrind, summaries } from './lib/callgrind.js';

const N1 = Number(process.env.CG_N1 ?? 500);
const N2 = Number(process.env.CG_N2 ?? 2000);
const upstream = await startCountUpstream();

async function instructions(main, n) {
  const p = await startUnderCallgrind(main, upstream.url);
  for (let i = 0; i < n; i++) await p.request();
  await p.stop();
  return summaries(p.dir, (f) => f.startsWith('cg.out')).reduce((a, x) => a + x.instructions, 0);
}

const builds = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['dist/main.js'];
for (const b of builds) {
  const main = b === 'dispatch-ref' ? b : resolve(b);
  const a = await instructions(main, N1);
  const c = await instructions(main, N2);
  console.log(JSON.stringify({ build: b, n1: N1, n2: N2, instructionsPerRequest: Math.round((c - a) / (N2 - N1)) }));
}
upstream.close();
