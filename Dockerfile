# syntax=docker/dockerfile:1
#
# Outrigger container image.
#
# KEEP IN SYNC with scripts/image-smoke.sh. These machines have no Docker engine, so
# .ci/run runs that script instead: it performs this file's runtime steps in a temporary
# directory (package.json + package-lock.json + dist/ + config/, `npm ci --omit=dev`,
# then `node dist/main.js` with OUTRIGGER_CONFIG set and a check of /readyz). When you
# change what is copied, how dependencies are installed, the entry point, the env or the
# ports here, change the script the same way.
#
#   docker build -t outrigger:0.1.0 .
#   docker run --rm --read-only -p 15001:15001 -p 15000:15000 -p 15090:15090 outrigger:0.1.0
#   docker run --rm --read-only -v "$PWD/my-config:/etc/outrigger:ro" outrigger:0.1.0

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: all dependencies, compile TypeScript to dist/ ---------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only ----------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="outrigger" \
      org.opencontainers.image.description="Resilience sidecar proxy: per-route timeouts, retries, circuit breakers and fallbacks, with health and Prometheus metrics." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"

# tini as PID 1: forwards SIGTERM to node (which drains and exits 0) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Nothing below writes to disk at run time: the image works with a read-only root
# filesystem (logs go to stdout, config is only read).
ENV NODE_ENV=production \
    OUTRIGGER_CONFIG=/etc/outrigger/outrigger.yaml

# package.json is needed at run time: it marks dist/ as ES modules and gives --version.
COPY --chown=0:0 package.json package-lock.json ./
COPY --chown=0:0 --from=deps /app/node_modules ./node_modules
COPY --chown=0:0 --from=build /app/dist ./dist
COPY --chown=0:0 config ./config
# The bundled example config as the default; in Kubernetes a ConfigMap is mounted over
# /etc/outrigger as a directory (never subPath), so hot reload sees its updates.
COPY --chown=0:0 config/outrigger.yaml /etc/outrigger/outrigger.yaml

# Numeric user, so that runAsNonRoot can verify it (uid 1000 is "node" in the base image).
USER 1000:1000
EXPOSE 15001 15000 15021 15090

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:15000/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
