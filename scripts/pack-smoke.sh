#!/usr/bin/env bash
# Production-install smoke test: what `npm install outrigger` gives a user, with no devDependencies.
#
#   1. `npm run build`, then `npm pack` the project into a temporary directory (the pack runs
#      with --ignore-scripts: dist/ was just built, and `prepare` would only build it again)
#   2. in an empty folder (a one-line package.json, so npm does not look for a project above
#      it), `npm install --omit=dev --no-audit --no-fund <tarball>`. Lifecycle scripts are
#      left on, as a user's install has them: npm runs `prepare` only for git and linked
#      (directory) installs, never for a tarball. The install runs with --foreground-scripts,
#      and the script fails if `outrigger@<version> prepare` shows up in its output (it would
#      fail anyway: the tarball has no src/ and no tsc). No devDependency may be installed,
#      and `ws` (a runtime dependency since WebSocket proxying needs it) must be.
#   3. start a small upstream with the INSTALLED folder's node_modules: a node:http server
#      and a `ws` WebSocketServer echo on it, on 127.0.0.1 port 0. It fails unless `ws`
#      resolves inside the install folder (no node_modules in any parent directory either,
#      so nothing can be picked up from outside it).
#   4. `outrigger check` and `outrigger --version` with the installed binary, then start
#      `node_modules/.bin/outrigger --config <tmp>/outrigger.yaml`, listeners on 127.0.0.1
#      port 0 (the ports are read from its "outrigger listening" log line), wait for
#      GET /readyz on the admin port
#   5. one HTTP GET and one WebSocket echo through the proxy (Node's own fetch and
#      WebSocket clients), both answers checked
#   6. SIGTERM, and a clean exit 0 within the drain bound; everything is stopped and the
#      temporary directory removed on any exit (trap)
# Every wait is bounded. Prints one summary line; exits non-zero with a message on any failure.
#
# Usage: bash scripts/pack-smoke.sh
# Env:   PACK_SMOKE_KEEP=1 keeps the temporary directory; PACK_SMOKE_SKIP_BUILD=1 skips
#        `npm run build` (dist/ must exist); PACK_SMOKE_TIMEOUT (seconds for each wait on the
#        proxy and the upstream, default 20); PACK_SMOKE_NPM_TIMEOUT (seconds for each npm
#        step: build, pack, install; default 300).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wait_s="${PACK_SMOKE_TIMEOUT:-20}"
npm_s="${PACK_SMOKE_NPM_TIMEOUT:-300}"
started=$SECONDS
log() { printf 'pack-smoke: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

command -v node >/dev/null || fail "node is not on PATH"
command -v npm >/dev/null || fail "npm is not on PATH"
unset NODE_PATH NODE_OPTIONS

work="$(mktemp -d "${TMPDIR:-/tmp}/outrigger-pack-smoke.XXXXXX")"
inst="$work/install"
proxy_pid=""
upstream_pid=""

stop_pid() { # pid: SIGTERM, then SIGKILL after 3 s
  local p="$1"
  [[ -n "$p" ]] || return 0
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$proxy_pid"
  stop_pid "$upstream_pid"
  if [[ $rc -ne 0 ]]; then
    for f in npm-install.log proxy.log upstream.log; do
      if [[ -s "$work/$f" ]]; then log "$f (last 30 lines):"; tail -n 30 "$work/$f" | sed 's/^/  | /' >&2; fi
    done
  fi
  if [[ "${PACK_SMOKE_KEEP:-0}" == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. build and pack ---------------------------------------------------------------------
cd "$repo"
if [[ "${PACK_SMOKE_SKIP_BUILD:-0}" != 1 ]]; then
  log "npm run build"
  timeout "$npm_s" npm run --silent build >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "npm run build failed (or took over ${npm_s}s)"; }
fi
[[ -f dist/main.js ]] || fail "dist/main.js is missing after the build"
log "npm pack"
timeout "$npm_s" npm pack --ignore-scripts --silent --pack-destination "$work" >"$work/pack.out" 2>"$work/pack.err" ||
  { cat "$work/pack.err" >&2; fail "npm pack failed (or took over ${npm_s}s)"; }
tarball="$work/$(tail -n 1 "$work/pack.out")"
[[ -f "$tarball" ]] || fail "npm pack did not write a tarball (output: $(cat "$work/pack.out"))"
version="$(node -p 'require("./package.json").version')"

# --- 2. production install into an empty folder --------------------------------------------
mkdir -p "$inst"
d="$inst"
while [[ "$d" != "/" ]]; do
  d="$(dirname "$d")"
  [[ ! -e "$d/node_modules" ]] || fail "$d/node_modules exists: modules could resolve from outside the install folder; set TMPDIR elsewhere"
done
printf '{ "name": "outrigger-pack-smoke", "private": true }\n' >"$inst/package.json"
log "npm install --omit=dev $(basename "$tarball")"
(cd "$inst" && timeout "$npm_s" npm install --omit=dev --no-audit --no-fund --foreground-scripts "$tarball") >"$work/npm-install.log" 2>&1 ||
  fail "npm install --omit=dev of the tarball failed (or took over ${npm_s}s)"
if grep -qE "^> outrigger@[^ ]+ prepare" "$work/npm-install.log"; then
  fail "npm ran outrigger's prepare script while installing the tarball"
fi
[[ -f "$inst/node_modules/outrigger/dist/main.js" ]] || fail "node_modules/outrigger/dist/main.js is not in the installed package"
[[ -x "$inst/node_modules/.bin/outrigger" ]] || fail "node_modules/.bin/outrigger was not linked"
[[ -f "$inst/node_modules/ws/package.json" ]] || fail "ws is not installed by --omit=dev: it must be a runtime dependency"
# shellcheck disable=SC2016 # JavaScript template literal, not a shell expansion
dev_installed="$(cd "$inst" && node -e '
  const pkg = require("./node_modules/outrigger/package.json");
  const fs = require("node:fs");
  const runtime = new Set(Object.keys(pkg.dependencies || {}));
  console.log(Object.keys(pkg.devDependencies || {}).filter((n) => !runtime.has(n) && fs.existsSync(`node_modules/${n}/package.json`)).join(" "));
')"
[[ -z "$dev_installed" ]] || fail "devDependencies installed by --omit=dev: $dev_installed"
packages="$(grep -oE 'added [0-9]+ packages?' "$work/npm-install.log" | tail -n 1 | grep -oE '[0-9]+' || echo "?")"

# --- 3. the upstream, on the installed tree's ws -------------------------------------------
cat >"$work/upstream.mjs" <<'NODE'
// node:http + ws echo upstream; ws must come from the install folder given as argv[2].
import http from 'node:http';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import { writeFileSync } from 'node:fs';
const [inst, portFile] = process.argv.slice(2);
const require = createRequire(join(inst, 'package.json'));
const wsPath = require.resolve('ws');
if (!wsPath.startsWith(join(inst, 'node_modules') + sep)) {
  console.error(`ws resolved outside the install folder: ${wsPath}`);
  process.exit(3);
}
const { WebSocketServer } = require('ws');
const wsVersion = require('ws/package.json').version;
const server = http.createServer((req, res) => {
  const body = `pack-smoke upstream: ${req.method} ${req.url}`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, `${server.address().port} ${wsVersion}\n`));
process.on('SIGTERM', () => process.exit(0));
NODE
(cd "$inst" && exec node "$work/upstream.mjs" "$inst" "$work/upstream.port") >"$work/upstream.log" 2>&1 &
upstream_pid=$!
for _ in $(seq $((wait_s * 10))); do
  [[ -s "$work/upstream.port" ]] && break
  kill -0 "$upstream_pid" 2>/dev/null || fail "the upstream exited before listening"
  sleep 0.1
done
[[ -s "$work/upstream.port" ]] || fail "the upstream did not listen within ${wait_s}s"
read -r upstream_port ws_version <"$work/upstream.port"

# --- 4. the installed binary ---------------------------------------------------------------
cat >"$work/outrigger.yaml" <<YAML
# generated by scripts/pack-smoke.sh
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
metrics: { listen: 127.0.0.1:0 }
log: { level: info, accessLog: false }
drain: { delay: 0s, timeout: 2s }
reload: { pollInterval: 0 }
upstreams:
  app: { endpoints: [http://127.0.0.1:${upstream_port}] }
routes:
  - name: smoke
    match: { pathPrefix: / }
    upstream: app
    timeout: 5s
    upgrades: [websocket]
YAML
bin="$inst/node_modules/.bin/outrigger"
got_version="$(cd "$inst" && timeout "$wait_s" "$bin" --version 2>&1)" || fail "outrigger --version failed: $got_version"
[[ "$got_version" == *"$version"* ]] || fail "outrigger --version printed \"$got_version\", expected $version"
check_out="$(cd "$inst" && timeout "$wait_s" "$bin" check "$work/outrigger.yaml" 2>&1)" || fail "outrigger check rejected the smoke config: $check_out"

(cd "$inst" && exec "$bin" --config "$work/outrigger.yaml") >"$work/proxy.log" 2>&1 &
proxy_pid=$!
listening=""
for _ in $(seq $((wait_s * 10))); do
  listening="$(grep -m1 '"msg":"outrigger listening"' "$work/proxy.log" 2>/dev/null || true)"
  [[ -n "$listening" ]] && break
  kill -0 "$proxy_pid" 2>/dev/null || fail "outrigger exited before listening"
  sleep 0.1
done
[[ -n "$listening" ]] || fail "outrigger did not log \"outrigger listening\" within ${wait_s}s"
read -r proxy_addr admin_addr < <(node -e 'const l = JSON.parse(process.argv[1]); console.log(l.listen, l.admin)' "$listening")

# --- 5. one HTTP request and one WebSocket echo through the proxy --------------------------
cat >"$work/client.mjs" <<'NODE'
// Waits for /readyz, then one GET and one WebSocket echo through the proxy. Node's own
// fetch and WebSocket: the client side needs nothing from any node_modules.
const [proxy, admin, waitS] = process.argv.slice(2);
const deadline = Date.now() + Number(waitS) * 1000;
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};
let last = 'no answer';
for (;;) {
  try {
    const r = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(2000) });
    if (r.status === 200) break;
    last = `status ${r.status}`;
  } catch (err) {
    last = err.cause?.code ?? err.message;
  }
  if (Date.now() > deadline) fail(`GET /readyz on the admin port did not answer 200 within ${waitS}s (${last})`);
  await new Promise((r) => setTimeout(r, 100));
}
const res = await fetch(`http://${proxy}/pack/smoke?x=1`, { signal: AbortSignal.timeout(5000) }).catch((err) => fail(`HTTP request through the proxy failed: ${err.cause?.code ?? err.message}`));
const body = await res.text();
if (res.status !== 200 || body !== 'pack-smoke upstream: GET /pack/smoke?x=1') {
  fail(`HTTP through the proxy: expected 200 "pack-smoke upstream: GET /pack/smoke?x=1", got ${res.status} ${JSON.stringify(body.slice(0, 300))}`);
}
const message = `echo ${process.pid} ${Date.now()}`;
const echoed = await new Promise((resolve, reject) => {
  const ws = new WebSocket(`ws://${proxy}/pack/ws`);
  const timer = setTimeout(() => {
    ws.close();
    reject(new Error('no echo within 5s'));
  }, 5000);
  ws.onopen = () => ws.send(message);
  ws.onmessage = (ev) => {
    clearTimeout(timer);
    ws.close(1000);
    resolve(String(ev.data));
  };
  ws.onerror = (ev) => {
    clearTimeout(timer);
    reject(new Error(ev.message || ev.error?.message || 'the upgrade failed'));
  };
}).catch(async (err) => fail(`WebSocket through the proxy: ${err.message} (${await upgradeAnswer()})`));
if (echoed !== message) fail(`WebSocket echo: sent ${JSON.stringify(message)}, got ${JSON.stringify(echoed)}`);
console.log(`http=${res.status} ws=echoed`);

// What the proxy answers a bare upgrade request, for the failure message.
async function upgradeAnswer() {
  const http = await import('node:http');
  const [host, port] = [proxy.slice(0, proxy.lastIndexOf(':')), proxy.slice(proxy.lastIndexOf(':') + 1)];
  return new Promise((resolve) => {
    const req = http.request({ host, port, path: '/pack/ws', timeout: 3000, headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } });
    req.on('upgrade', (r, socket) => {
      socket.destroy();
      resolve(`a bare upgrade request gets ${r.statusCode}`);
    });
    req.on('response', (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (c) => (body += c));
      r.on('end', () => resolve(`a bare upgrade request gets ${r.statusCode} ${JSON.stringify(body.slice(0, 200))}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 3s')));
    req.on('error', (e) => resolve(`a bare upgrade request fails: ${e.message}`));
    req.end();
  });
}
NODE
client_out="$(timeout $((wait_s + 15)) node "$work/client.mjs" "$proxy_addr" "$admin_addr" "$wait_s" 2>&1)" || fail "${client_out:-the client timed out}"
kill -0 "$proxy_pid" 2>/dev/null || fail "outrigger exited during the requests"
if grep -q '"level":50\|"level":60\|"level":"error"\|"level":"fatal"' "$work/proxy.log"; then
  fail "outrigger logged an error: $(grep -m1 '"level":50\|"level":60\|"level":"error"\|"level":"fatal"' "$work/proxy.log")"
fi

# --- 6. clean stop -------------------------------------------------------------------------
kill -TERM "$proxy_pid"
rc=""
for _ in $(seq $((wait_s * 10))); do
  if ! kill -0 "$proxy_pid" 2>/dev/null; then
    rc=0
    wait "$proxy_pid" || rc=$?
    break
  fi
  sleep 0.1
done
[[ -n "$rc" ]] || fail "outrigger did not exit within ${wait_s}s of SIGTERM"
proxy_pid=""
[[ "$rc" == 0 ]] || fail "outrigger exited with $rc after SIGTERM"

size_kib=$(( $(wc -c <"$tarball") / 1024 ))
echo "pack-smoke: OK $(basename "$tarball") (${size_kib} KiB) installed with --omit=dev (${packages} packages, ws ${ws_version}, no devDependencies, prepare not run); HTTP 200 and WebSocket echo through node_modules/.bin/outrigger; clean exit on SIGTERM; $((SECONDS - started)) s"
