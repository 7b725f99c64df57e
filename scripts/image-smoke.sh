#!/usr/bin/env bash
# Image smoke test without a Docker engine.
#
# KEEP IN SYNC with the Dockerfile. This script first checks the Dockerfile itself:
#   0. every FROM is pinned `image:tag@sha256:<64 hex>`; the Node major in the base tags
#      (node:24-..., distroless/nodejs24-...) is the one running this script (CI: 24);
#      every `npm ci` passes --ignore-scripts (the `prepare` script needs tsc, and src/);
#      the runtime stage (after the last FROM) has no RUN step that needs a shell, apt-get,
#      npm, npx or corepack (its base has none of them); ENTRYPOINT, CMD and HEALTHCHECK
#      are exec form, the ENTRYPOINT binary is copied in, and /nodejs/bin is on ENV PATH
#      (the distroless base does not put node on PATH; `node` in CMD, HEALTHCHECK and the
#      chart's exec preStop relies on it)
# then performs the runtime stage's steps in a temporary directory standing in for /app:
#   1. copy package.json, package-lock.json, dist/ and config/ (the Dockerfile's COPY lines;
#      dist/ comes from `npm run build`, which .ci/run runs first, like the build stage)
#   2. `npm ci --omit=dev --ignore-scripts` (the deps stage)
#   3. put the example config at <tmp>/etc/outrigger/outrigger.yaml, with the listen
#      addresses moved to free 127.0.0.1 ports, set OUTRIGGER_CONFIG to it, NODE_ENV=production
#      and the Dockerfile's NODE_OPTIONS, and run the Dockerfile's CMD (`node dist/main.js`) from the app
#      directory; the bundled config's ports must be the Dockerfile's EXPOSEd ones
#   4. wait for GET /readyz on the status port (the probes' port) to answer 200, run the
#      Dockerfile's HEALTHCHECK command (aimed at the moved status port), then send
#      SIGTERM, as `docker stop` does through tini, and expect a clean exit 0 after the drain.
# When the Dockerfile changes what it copies, how it installs, its env, its entry point or
# its ports, change this script the same way. What needs an engine (the build itself, tini
# as PID 1, the distroless filesystem) is not covered here: see docs/image.md.
#
# Usage: bash scripts/image-smoke.sh                  (after npm run build)
#        bash scripts/image-smoke.sh --dockerfile-only  (step 0 only; no build needed)
# Env:   SMOKE_READY_TIMEOUT (seconds, default 20), SMOKE_KEEP=1 keeps the temp dir,
#        SMOKE_DOCKERFILE (default: the repository's Dockerfile; for tests of step 0).
# shellcheck disable=SC2016  # the `node -e` programs below are JavaScript, with their own ${...}
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ready_timeout="${SMOKE_READY_TIMEOUT:-20}"
log() { printf 'image-smoke: %s\n' "$*" >&2; }

dockerfile="${SMOKE_DOCKERFILE:-$repo/Dockerfile}"
dockerfile_only=0
case "${1:-}" in
  "") ;;
  --dockerfile-only) dockerfile_only=1 ;;
  *) log "unknown argument $1 (usage: image-smoke.sh [--dockerfile-only])"; exit 2 ;;
esac

[[ -f "$dockerfile" ]] || { log "$dockerfile is missing"; exit 1; }
[[ $dockerfile_only == 1 || -f "$repo/dist/main.js" ]] || { log "dist/main.js is missing: run npm run build first"; exit 1; }
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

# 0. The Dockerfile itself. Writes the runtime stage's CMD, HEALTHCHECK and EXPOSE as JSON
#    for the steps below.
node - "$dockerfile" "$work/dockerfile.json" <<'NODE' || exit 1
const { readFileSync, writeFileSync } = require("node:fs");
const [file, out] = process.argv.slice(2);
const problems = [];
// Logical lines: comments dropped, backslash continuations joined.
const lines = [];
let cur = "";
for (const raw of readFileSync(file, "utf8").split("\n")) {
  if (cur === "" && /^\s*(#|$)/.test(raw)) continue;
  if (/\\\s*$/.test(raw)) { cur += raw.replace(/\\\s*$/, " "); continue; }
  lines.push(cur + raw);
  cur = "";
}
if (cur) lines.push(cur);
const ins = lines.map((l) => { const m = /^\s*(\w+)\s+(.*)$/s.exec(l); return m ? { op: m[1].toUpperCase(), args: m[2].trim() } : { op: "", args: l }; });
const execForm = (s) => { try { const v = JSON.parse(s); return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string") ? v : null; } catch { return null; } };

const nodeMajor = process.versions.node.split(".")[0];
const froms = ins.map((x, i) => ({ ...x, i })).filter((x) => x.op === "FROM");
if (froms.length === 0) problems.push("no FROM line");
for (const f of froms) {
  const m = /^(?:--platform=\S+\s+)?(\S+):([^:@\s\/]+)@sha256:([0-9a-f]+)(?:\s+AS\s+\S+)?$/i.exec(f.args);
  if (!m) { problems.push(`FROM ${f.args}: not pinned as image:tag@sha256:<digest> (a literal, no build-arg)`); continue; }
  const [, image, tag, hex] = m;
  if (hex.length !== 64) problems.push(`FROM ${f.args}: the digest has ${hex.length} hex characters, not 64`);
  const major = /(?:^|\/)node$/.test(image) ? (/^(\d+)/.exec(tag) ?? [])[1] : (/nodejs(\d+)/.exec(image) ?? [])[1];
  if (major === undefined) problems.push(`FROM ${f.args}: no Node major in the image name or tag (image-smoke.sh knows node:<major>-... and .../nodejs<major>-...)`);
  else if (major !== nodeMajor) problems.push(`FROM ${f.args}: Node ${major}, but this smoke test (and CI) runs Node ${nodeMajor}`);
}
for (const r of ins.filter((x) => x.op === "RUN" && /\bnpm\s+ci\b/.test(x.args))) {
  if (!/--ignore-scripts\b/.test(r.args)) problems.push(`RUN ${r.args}: npm ci without --ignore-scripts runs the prepare script (npm run build)`);
}

const last = froms.length ? froms[froms.length - 1].i : 0;
const runtime = ins.slice(last + 1);
const forbidden = /(^|[\s;&|("'\/])(apt-get|apt|dpkg|npm|npx|corepack|sh|bash|dash)(?=$|[\s;&|)"'])|\bsh\s+-c\b/;
for (const r of runtime.filter((x) => x.op === "RUN")) {
  const argv = execForm(r.args);
  const tool = forbidden.exec(argv === null ? r.args : argv.join(" "));
  const why = [tool ? `runs ${tool[2] ?? "sh -c"}, which the runtime image does not have` : null, argv === null ? "shell form needs /bin/sh" : null].filter(Boolean);
  if (why.length) problems.push(`runtime stage: RUN ${r.args}: ${why.join("; ")}`);
}
const one = (op) => { const all = runtime.filter((x) => x.op === op); return all.length ? all[all.length - 1].args : null; };
const entry = one("ENTRYPOINT");
const cmd = one("CMD");
const entryArgv = entry === null ? null : execForm(entry);
const cmdArgv = cmd === null ? null : execForm(cmd);
if (entry === null) problems.push("runtime stage: no ENTRYPOINT");
else if (entryArgv === null) problems.push(`runtime stage: ENTRYPOINT ${entry}: not exec form`);
if (cmd === null) problems.push("runtime stage: no CMD");
else if (cmdArgv === null) problems.push(`runtime stage: CMD ${cmd}: not exec form`);
else if (cmdArgv[0] !== "node" || cmdArgv[1] !== "dist/main.js") problems.push(`runtime stage: CMD ${cmd}: expected ["node", "dist/main.js", ...] (this script runs it)`);
if (entryArgv !== null && entryArgv[0].startsWith("/")) {
  const copied = runtime.some((x) => x.op === "COPY" && x.args.split(/\s+/).pop() === entryArgv[0]);
  if (!copied) problems.push(`runtime stage: ENTRYPOINT ${entryArgv[0]} is not COPYed into the runtime stage`);
}
let health = null;
const hc = one("HEALTHCHECK");
if (hc === null) problems.push("runtime stage: no HEALTHCHECK");
else {
  const m = /\bCMD\s+(\[.*\])\s*$/s.exec(hc);
  health = m ? execForm(m[1]) : null;
  if (health === null) problems.push(`runtime stage: HEALTHCHECK ${hc}: not exec form (CMD-SHELL needs /bin/sh)`);
  else if (health[0] !== "node") problems.push(`runtime stage: HEALTHCHECK ${hc}: expected a node command`);
}
// The runtime stage's last ENV value of a variable (values without spaces, as this Dockerfile writes them).
const envValue = (name) => runtime.filter((x) => x.op === "ENV").map((x) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(x.args)?.[1]).filter(Boolean).pop();
const envPath = envValue("PATH");
const nodeOptions = envValue("NODE_OPTIONS") ?? "";
const base = froms.length ? froms[froms.length - 1].args : "";
if (/distroless\/nodejs/.test(base) && !(envPath ?? "").split(":").includes("/nodejs/bin")) {
  problems.push("runtime stage: ENV PATH must include /nodejs/bin (the distroless base does not put node on PATH)");
}
const expose = runtime.filter((x) => x.op === "EXPOSE").flatMap((x) => x.args.split(/\s+/)).map((p) => Number(p.split("/")[0]));
if (problems.length) {
  for (const p of problems) process.stderr.write(`image-smoke: Dockerfile: ${p}\n`);
  process.exit(1);
}
writeFileSync(out, JSON.stringify({ cmd: cmdArgv, health, expose, nodeOptions }));
process.stderr.write(`image-smoke: Dockerfile: ${froms.length} FROM lines pinned by digest, Node ${nodeMajor}; runtime stage: no shell steps, exec form ENTRYPOINT/CMD/HEALTHCHECK\n`);
NODE
if [[ $dockerfile_only == 1 ]]; then log "ok (Dockerfile only)"; exit 0; fi

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
#    Uses the installed production `js-yaml` package, so it also proves that it is there.
read -r proxy_port admin_port metrics_port status_port < <(node -e '
  const net = require("node:net");
  const servers = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok, fail) => { s.once("error", fail); s.listen(0, "127.0.0.1", ok); })))
    .then(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); });
')
config="$work/etc/outrigger/outrigger.yaml"
# The bundled config's ports are the image's: EXPOSEd, and the status port is the one the
# HEALTHCHECK asks. Prints the bundled status port, which the HEALTHCHECK is then moved off.
bundled_status_port="$(cd "$app" && node --input-type=module -e '
  import { readFileSync } from "node:fs";
  import { load } from "js-yaml";
  const [src, df] = process.argv.slice(1);
  const cfg = load(readFileSync(src, "utf8")) ?? {};
  const { health, expose } = JSON.parse(readFileSync(df, "utf8"));
  const port = (addr) => Number(/:(\d+)$/.exec(addr ?? "")?.[1]);
  const problems = [];
  if (!cfg.status?.listen) problems.push("config/outrigger.yaml has no status.listen, which the HEALTHCHECK and the probes use");
  const ports = { listen: port(cfg.listen ?? "0.0.0.0:15001"), "status.listen": port(cfg.status?.listen), "metrics.listen": port(cfg.metrics?.listen ?? "0.0.0.0:15090") };
  for (const [key, p] of Object.entries(ports)) if (p && !expose.includes(p)) problems.push(`config/outrigger.yaml ${key} port ${p} is not in the Dockerfile EXPOSE (${expose.join(" ")})`);
  const url = `127.0.0.1:${ports["status.listen"]}/livez`;
  if (!health.join(" ").includes(url)) problems.push(`the Dockerfile HEALTHCHECK does not ask ${url} (the bundled status listener)`);
  if (problems.length) { for (const p of problems) console.error(`image-smoke: ${p}`); process.exit(1); }
  console.log(ports["status.listen"]);
' "$app/config/outrigger.yaml" "$work/dockerfile.json")" || exit 1
(cd "$app" && node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { load, dump } from "js-yaml";
  const [src, dst, proxy, admin, metrics, status] = process.argv.slice(1);
  const cfg = load(readFileSync(src, "utf8")) ?? {};
  cfg.listen = `127.0.0.1:${proxy}`;
  cfg.admin = { ...cfg.admin, listen: `127.0.0.1:${admin}` };
  cfg.metrics = { ...cfg.metrics, listen: `127.0.0.1:${metrics}` };
  if (cfg.status) cfg.status = { ...cfg.status, listen: `127.0.0.1:${status}` };
  cfg.drain = { ...cfg.drain, delay: "200ms", timeout: "2s" };  // a quick shutdown for the test
  writeFileSync(dst, dump(cfg));
' "$app/config/outrigger.yaml" "$config" "$proxy_port" "$admin_port" "$metrics_port" "$status_port")

# The app directory is read-only at run time, as with a read-only root filesystem (this
# only binds for non-root users; a real read-only mount is checked by the image in k8s).
chmod -R a-w "$app" "$work/etc"

# The Dockerfile's CMD, argument by argument (tini only passes it on).
mapfile -t cmd < <(node -e 'for (const a of JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")).cmd) console.log(a)' "$work/dockerfile.json")
# The Dockerfile's ENV NODE_OPTIONS too: node refuses a flag it does not allow there.
node_options="$(node -e 'console.log(JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")).nodeOptions)' "$work/dockerfile.json")"
log "starting ${cmd[*]} (NODE_OPTIONS=$node_options OUTRIGGER_CONFIG=$config; proxy $proxy_port, admin $admin_port, status $status_port, metrics $metrics_port)"
(cd "$app" && exec env NODE_ENV=production NODE_OPTIONS="$node_options" OUTRIGGER_CONFIG="$config" "${cmd[@]}") >"$work/proxy.log" 2>&1 &
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

# The Dockerfile's HEALTHCHECK command as Docker runs it (exec form, in the app directory),
# aimed at the moved status port.
mapfile -t health < <(node -e '
  const [df, from, to] = process.argv.slice(1);
  for (const a of JSON.parse(require("node:fs").readFileSync(df, "utf8")).health) console.log(a.split(`127.0.0.1:${from}/`).join(`127.0.0.1:${to}/`));
' "$work/dockerfile.json" "$bundled_status_port" "$status_port")
if ! (cd "$app" && timeout 5 "${health[@]}"); then log "the HEALTHCHECK command failed against a ready proxy"; exit 1; fi
log "HEALTHCHECK (node, GET /livez on the status port): exit 0"

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
