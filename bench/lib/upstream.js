// The bench upstream: nginx (1 worker process, keep-alive) when installed, else a
// node:http server. Both serve a fixed 128-byte body, can fail a share of
// requests with 503, and expose a request counter so attempts can be counted
// at the upstream.
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BODY_128 } from './body.js';
import { freePort, makeTmpDir, startProcess, waitForHttp, waitForPort, httpRequest, tail } from './proc.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export function findNginx() {
  for (const cand of [process.env.BENCH_NGINX, 'nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (!cand) continue;
    try {
      const out = execFileSync(cand, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      void out;
      return cand;
    } catch {
      // not there; try the next candidate
    }
  }
  return null;
}

function nginxVersion(bin) {
  try {
    // nginx -v writes "nginx version: nginx/1.22.1" to stderr
    const r = execFileSync('sh', ['-c', `"${bin}" -v 2>&1`], { encoding: 'utf8' });
    return r.trim().replace(/^nginx version:\s*/, '');
  } catch {
    return 'nginx';
  }
}

function nginxConf({ dir, port, statsPort, failRate, h2cPort }) {
  const pct = Math.round(failRate * 1000) / 10;
  const failBlock =
    failRate > 0
      ? `  split_clients "\${request_id}" $bench_fail { ${pct}% 1; * ""; }\n`
      : '';
  const failIf = failRate > 0 ? '      if ($bench_fail) { return 503 "upstream says 503\\n"; }\n' : '';
  const body = BODY_128.replace(/\n$/, '\\n');
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000000;
  server_tokens off;
${failBlock}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
${failIf}      return 200 "${body}";
    }
  }
  server {
    listen 127.0.0.1:${statsPort};
    location / { stub_status; }
  }
${h2cPort ? h2cServer(h2cPort, body) : ''}}
`;
}

// The same answer over cleartext HTTP/2 with prior knowledge (\`listen … http2\` without ssl),
// for h2c-to-h1's direct target.
function h2cServer(h2cPort, body) {
  return `  server {
    listen 127.0.0.1:${h2cPort} http2;
    location / {
      default_type text/plain;
      return 200 "${body}";
    }
  }
`;
}

/**
 * Start the upstream. opts: { failRate = 0, kind: 'auto'|'nginx'|'node', h2c = false }.
 * Returns { kind, label, port, url, pid, requests(), stop() }, and with h2c also h2cUrl: the
 * same process answering cleartext HTTP/2 with prior knowledge on a second port.
 * requests() returns the number of requests served so far (both ports).
 */
export async function startUpstream({ failRate = 0, kind = process.env.BENCH_UPSTREAM || 'auto', h2c = false } = {}) {
  const port = await freePort();
  const statsPort = await freePort();
  const h2cPort = h2c ? await freePort() : null;
  const dir = makeTmpDir('outrigger-bench-upstream-');
  const nginx = kind === 'node' ? null : findNginx();
  if (kind === 'nginx' && !nginx) throw new Error('BENCH_UPSTREAM=nginx but nginx is not installed');
  let proc;
  let label;
  if (nginx) {
    mkdirSync(join(dir, 'logs'), { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), nginxConf({ dir, port, statsPort, failRate, h2cPort }));
    proc = startProcess(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
      stderrFile: join(dir, 'stderr.log'),
    });
    label = `${nginxVersion(nginx)}, 1 worker process (master_process off), keep-alive`;
  } else {
    proc = startProcess(
      process.execPath,
      [
        join(here, 'upstream-node.js'),
        '--port',
        String(port),
        '--stats-port',
        String(statsPort),
        '--fail-rate',
        String(failRate),
        ...(h2cPort ? ['--h2c-port', String(h2cPort)] : []),
      ],
      { stderrFile: join(dir, 'stderr.log') },
    );
    label = `node:http ${process.version}${kind === 'node' ? '' : ' (nginx not installed)'}`;
  }
  const statsUrl = `http://127.0.0.1:${statsPort}/`;
  try {
    await waitForHttp(statsUrl, { proc, what: nginx ? 'nginx upstream' : 'node upstream', timeoutMs: 10000 });
    await waitForPort(port, { proc, timeoutMs: 5000 });
    if (h2cPort) await waitForPort(h2cPort, { proc, timeoutMs: 5000 });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(join(dir, 'error.log'))}\n${tail(join(dir, 'stderr.log'))}`);
  }
  let statsQueries = 1; // the readiness probe above
  return {
    kind: nginx ? 'nginx' : 'node',
    label,
    port,
    url: `http://127.0.0.1:${port}`,
    h2cUrl: h2cPort ? `http://127.0.0.1:${h2cPort}` : null,
    pid: proc.pid,
    async requests() {
      const r = await httpRequest(statsUrl);
      statsQueries++;
      const m = /\s(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(r.body);
      if (!m) throw new Error(`unexpected upstream stats: ${r.body}`);
      // nginx's stub_status counts every request of the process, itself included.
      return nginx ? Number(m[3]) - statsQueries : Number(m[3]);
    },
    stop: () => proc.stop(),
  };
}
