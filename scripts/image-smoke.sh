#!/usr/bin/env bash
# Image smoke test without a Docker engine.
#
# KEEP IN SYNC with the Dockerfile. This script performs the runtime stage's steps in a
# temporary directory standing in for /app:
#   1. copy package.json, package-lock.json, dist/ and config/ (the Dockerfile's COPY lines;
#      dist/ comes from `npm run build`, which .ci/run runs first, like the build stage)
#   2. `npm ci --omit=dev --ignore-scripts` (the deps stage)
#   3. put the example config at <tmp>/etc/outrigger/outrigger.yaml, with the listen
#      addresses moved to free 127.0.0.1 ports, set OUTRIGGER_CONFIG to it and
#      NODE_ENV=production, and run `node dist/main.js` from the app directory (the CMD)
#   4. wait for GET /readyz on the status port (the probes' port) to answer 200, then send SIGTERM, as
#      `docker stop` does through tini, and expect a clean exit 0 after the drain.
# When the Dockerfile changes what it copies, how it installs, its env, its entry point or
# its ports, change this script the same way.
#
# Usage: bash scripts/image-smoke.sh        (after npm run build)
# Env:   SMOKE_READY_TIMEOUT (seconds, default 20), SMOKE_KEEP=1 keeps the temp dir.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ready_timeout="${SMOKE_READY_TIMEOUT:-20}"
log() { printf 'image-smoke: %s\n' "$*" >&2; }

[[ -f "$repo/dist/main.js" ]] || { log "dist/main.js is missing: run npm run build first"; exit 1; }
[[ -f "$repo/config/outrigger.yaml" ]] || { log "config/outrigger.yaml is missing"; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/outrigger-image-smoke.XXXXXX")"
app="$work/app"
pid=""
cleanup() {
  local rc=$?
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$work/proxy.log" ]]; then
    log "proxy output:"
    sed 's/^/  | /' "$work/proxy.log" >&2 || true
  fi
  chmod -R u+w "$work" 2>/dev/null || true
  if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT

# 1. The runtime stage's COPY lines.
mkdir -p "$app" "$work/etc/outrigger"
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp -R "$repo/dist" "$app/dist"
cp -R "$repo/config" "$app/config"

# 2. Production dependencies only, as the deps stage installs them.
log "npm ci --omit=dev in $app"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) || {
  log "npm ci failed:"; cat "$work/npm.log" >&2; exit 1
}
for dev in vitest typescript eslint; do
  if [[ -e "$app/node_modules/$dev" ]]; then log "dev dependency $dev was installed with --omit=dev"; exit 1; fi
done

# 3. The example config at the image's config path, with listen addresses on free ports.
#    Uses the installed production `yaml` package, so it also proves that it is there.
read -r proxy_port admin_port metrics_port status_port < <(node -e '
  const net = require("node:net");
  const servers = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok, fail) => { s.once("error", fail); s.listen(0, "127.0.0.1", ok); })))
    .then(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); });
')
config="$work/etc/outrigger/outrigger.yaml"
(cd "$app" && node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { parse, stringify } from "yaml";
  const [src, dst, proxy, admin, metrics, status] = process.argv.slice(1);
  const cfg = parse(readFileSync(src, "utf8")) ?? {};
  cfg.listen = `127.0.0.1:${proxy}`;
  cfg.admin = { ...cfg.admin, listen: `127.0.0.1:${admin}` };
  cfg.metrics = { ...cfg.metrics, listen: `127.0.0.1:${metrics}` };
  if (cfg.status) cfg.status = { ...cfg.status, listen: `127.0.0.1:${status}` };
  cfg.drain = { ...cfg.drain, delay: "200ms", timeout: "2s" };  // a quick shutdown for the test
  writeFileSync(dst, stringify(cfg));
' "$app/config/outrigger.yaml" "$config" "$proxy_port" "$admin_port" "$metrics_port" "$status_port")

# The app directory is read-only at run time, as with a read-only root filesystem (this
# only binds for non-root users; a real read-only mount is checked by the image in k8s).
chmod -R a-w "$app" "$work/etc"

log "starting node dist/main.js (OUTRIGGER_CONFIG=$config; proxy $proxy_port, admin $admin_port, metrics $metrics_port)"
(cd "$app" && exec env NODE_ENV=production OUTRIGGER_CONFIG="$config" node dist/main.js) >"$work/proxy.log" 2>&1 &
pid=$!

# 4. Readiness, then a SIGTERM and a clean exit.
ready=0
deadline=$((SECONDS + ready_timeout))
while (( SECONDS < deadline )); do
  if ! kill -0 "$pid" 2>/dev/null; then log "the proxy exited before it was ready"; exit 1; fi
  code="$(node -e '
    const http = require("node:http");
    const req = http.get(process.argv[1], { timeout: 2000 }, (res) => { console.log(res.statusCode); res.resume(); });
    req.on("timeout", () => req.destroy());
    req.on("error", () => console.log(0));
  ' "http://127.0.0.1:$status_port/readyz")"
  if [[ "$code" == 200 ]]; then ready=1; break; fi
  sleep 0.2
done
if (( ! ready )); then log "GET /readyz did not answer 200 within ${ready_timeout}s"; exit 1; fi
log "GET /readyz: 200"

kill -TERM "$pid"
status=0
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then log "the proxy did not exit within 10s of SIGTERM"; exit 1; fi
wait "$pid" || status=$?
pid=""
if (( status != 0 )); then log "the proxy exited $status after SIGTERM (expected 0)"; exit 1; fi
log "SIGTERM: drained and exited 0"
log "ok"
