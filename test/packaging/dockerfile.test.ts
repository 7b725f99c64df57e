// The Dockerfile rules that scripts/image-smoke.sh checks (step 0, `--dockerfile-only`), on
// the real Dockerfile and on broken copies of it; and scripts/pin-base-images.sh against a
// stand-in `crane`, since these machines reach no registry.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_SEMI_SPACE_MB } from '../../src/util/young-generation.js';

const SMOKE = resolve('scripts/image-smoke.sh');
const PIN = resolve('scripts/pin-base-images.sh');
const DOCKERFILE = readFileSync('Dockerfile', 'utf8');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolvePromise) => {
    execFile('bash', args, { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'outrigger-dockerfile-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes text as a Dockerfile and runs image-smoke.sh --dockerfile-only on it. */
function lint(text: string): Promise<Result> {
  const file = join(dir, `Dockerfile.${n++}`);
  writeFileSync(file, text);
  return sh([SMOKE, '--dockerfile-only'], { SMOKE_DOCKERFILE: file });
}

/** The Dockerfile with `from` replaced by `to`; fails if `from` is not in it (the test is stale). */
function mutate(from: string | RegExp, to: string): string {
  const out = DOCKERFILE.replace(from, to);
  if (out === DOCKERFILE) throw new Error(`the Dockerfile no longer contains ${String(from)}`);
  return out;
}

describe('Dockerfile', () => {
  it('passes the image-smoke checks: pinned bases, Node 24, no shell steps in the runtime stage', async () => {
    const r = await sh([SMOKE, '--dockerfile-only']);
    expect(r.stderr).toContain('4 FROM lines pinned by digest, Node 24');
    expect(r.code, r.stderr).toBe(0);
  });

  it('builds and runs on distroless Node 24 with tini, exec form throughout', () => {
    const froms = DOCKERFILE.split('\n').filter((l) => /^FROM\s/.test(l));
    expect(froms.at(-1)).toMatch(/^FROM gcr\.io\/distroless\/nodejs24-debian12:\S+@sha256:[0-9a-f]{64} AS runtime$/);
    for (const f of froms.slice(0, -1)) expect(f).toMatch(/^FROM node:24-bookworm-slim@sha256:[0-9a-f]{64} AS \w+$/);
    expect(DOCKERFILE).toContain('COPY --chown=0:0 --from=tini /usr/bin/tini-static /usr/bin/tini');
    expect(DOCKERFILE).toContain('ENTRYPOINT ["/usr/bin/tini", "--"]');
    expect(DOCKERFILE).toContain('CMD ["node", "dist/main.js"]');
    expect(DOCKERFILE).toMatch(/HEALTHCHECK [^\n]*\\\n\s+CMD \["node", "-e", "fetch\('http:\/\/127\.0\.0\.1:15021\/livez'/);
    expect(DOCKERFILE).toMatch(/^ENV PATH=\/nodejs\/bin:/m);
    // The young generation the start-up warning recommends (src/util/young-generation.ts).
    expect(DOCKERFILE).toMatch(new RegExp(`^\\s+NODE_OPTIONS=--max-semi-space-size=${RECOMMENDED_SEMI_SPACE_MB} \\\\$`, 'm'));
    expect(DOCKERFILE).toMatch(/^USER 1000:1000$/m);
  });

  it('the bundled config has the status listener the HEALTHCHECK asks', () => {
    expect(readFileSync('config/outrigger.yaml', 'utf8')).toMatch(/^status: \{ listen: 0\.0\.0\.0:15021 \}/m);
  });

  it.each([
    ['an unpinned FROM', () => mutate(/(FROM node:24-bookworm-slim)@sha256:[0-9a-f]{64}( AS build)/, '$1$2'), 'not pinned as image:tag@sha256:<digest>'],
    ['a FROM through a build-arg', () => mutate(/FROM node:24-bookworm-slim@sha256:[0-9a-f]{64} AS build/, 'ARG NODE_IMAGE=node:24-bookworm-slim\nFROM ${NODE_IMAGE} AS build'), 'not pinned'],
    ['a short digest', () => mutate(/(FROM node:24-bookworm-slim@sha256:[0-9a-f]{12})[0-9a-f]{52}( AS build)/, '$1$2'), 'has 12 hex characters, not 64'],
    ['another Node major', () => mutate('FROM node:24-bookworm-slim', 'FROM node:22-bookworm-slim'), 'Node 22, but this smoke test (and CI) runs Node 24'],
    ['another Node major at run time', () => mutate('distroless/nodejs24-debian12', 'distroless/nodejs22-debian12'), 'Node 22, but'],
    ['apt-get in the runtime stage', () => mutate('\nUSER 1000:1000', '\nRUN apt-get update\nUSER 1000:1000'), 'RUN apt-get update: runs apt-get'],
    ['npm in the runtime stage, exec form', () => mutate('\nUSER 1000:1000', '\nRUN ["npm", "ci"]\nUSER 1000:1000'), 'runs npm'],
    ['sh -c in the runtime stage', () => mutate('\nUSER 1000:1000', '\nRUN ["/bin/sh", "-c", "true"]\nUSER 1000:1000'), 'runs sh'],
    ['a shell-form CMD', () => mutate('CMD ["node", "dist/main.js"]', 'CMD node dist/main.js'), 'CMD node dist/main.js: not exec form'],
    ['a shell-form ENTRYPOINT', () => mutate('ENTRYPOINT ["/usr/bin/tini", "--"]', 'ENTRYPOINT /usr/bin/tini --'), 'not exec form'],
    ['a shell-form HEALTHCHECK', () => mutate(/CMD \["node", "-e", "fetch[^\n]*/, 'CMD node -e 1'), 'HEALTHCHECK'],
    ['npm ci running the prepare script', () => mutate('npm ci --ignore-scripts --no-audit', 'npm ci --no-audit'), 'npm ci without --ignore-scripts'],
    ['node not on PATH', () => mutate(/ENV PATH=\S+ \\\n\s+/, 'ENV '), 'ENV PATH must include /nodejs/bin'],
    ['tini not copied in', () => mutate(/COPY [^\n]*tini-static[^\n]*\n/, ''), 'ENTRYPOINT /usr/bin/tini is not COPYed'],
  ])('rejects %s', async (_what, make, message) => {
    const r = await lint(make());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
  });
});

describe('scripts/pin-base-images.sh', () => {
  const NEW_NODE = 'sha256:' + '1'.repeat(64);
  const NEW_DISTROLESS = 'sha256:' + '2'.repeat(64);
  let bin: string;
  beforeAll(() => {
    bin = join(dir, 'bin');
    mkdirSync(bin);
    // A stand-in for `crane digest REF`, which logs what it was asked.
    writeFileSync(
      join(bin, 'crane'),
      `#!/usr/bin/env bash
[[ "$1" == digest ]] || exit 9
echo "$2" >> "${join(dir, 'crane.calls')}"
case "$2" in
  node:24-bookworm-slim) echo ${NEW_NODE} ;;
  gcr.io/distroless/nodejs24-debian12:latest) echo ${NEW_DISTROLESS} ;;
  *) echo "no such image $2" >&2; exit 1 ;;
esac
`,
    );
    chmodSync(join(bin, 'crane'), 0o755);
  });
  const env = () => ({ PATH: `${bin}:${process.env.PATH ?? ''}`, PIN_TOOL: 'crane' });

  it('rewrites each FROM to the digest its tag has now, and keeps everything else', async () => {
    const file = join(dir, 'Dockerfile.pin');
    writeFileSync(file, DOCKERFILE + 'FROM runtime AS debug\n');
    const check = await sh([PIN, '--check', file], env());
    expect(check.code, check.stderr).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(DOCKERFILE + 'FROM runtime AS debug\n');

    const r = await sh([PIN, file], env());
    expect(r.code, r.stderr).toBe(0);
    const out = readFileSync(file, 'utf8');
    const froms = out.split('\n').filter((l) => l.startsWith('FROM '));
    expect(froms).toEqual([
      `FROM node:24-bookworm-slim@${NEW_NODE} AS build`,
      `FROM node:24-bookworm-slim@${NEW_NODE} AS deps`,
      `FROM node:24-bookworm-slim@${NEW_NODE} AS tini`,
      `FROM gcr.io/distroless/nodejs24-debian12:latest@${NEW_DISTROLESS} AS runtime`,
      'FROM runtime AS debug',
    ]);
    const rest = (s: string) => s.split('\n').filter((l) => !l.startsWith('FROM '));
    expect(rest(out)).toEqual(rest(DOCKERFILE + 'FROM runtime AS debug\n'));
    // One look-up per image, and the result passes the smoke checks.
    expect(readFileSync(join(dir, 'crane.calls'), 'utf8').trim().split('\n').sort()).toEqual(
      ['gcr.io/distroless/nodejs24-debian12:latest', 'gcr.io/distroless/nodejs24-debian12:latest', 'node:24-bookworm-slim', 'node:24-bookworm-slim'].sort(),
    );
    expect((await sh([PIN, '--check', file], env())).code).toBe(0);
    // (image-smoke.sh wants the runtime stage last, and every FROM an image: without the
    // stage reference, the re-pinned file passes it.)
    writeFileSync(file, out.replace('FROM runtime AS debug\n', ''));
    const smoke = await sh([SMOKE, '--dockerfile-only'], { SMOKE_DOCKERFILE: file });
    expect(smoke.code, smoke.stderr).toBe(0);
  });

  it('refuses a FROM it cannot pin: no tag, or a build-arg', async () => {
    const noTag = join(dir, 'Dockerfile.notag');
    writeFileSync(noTag, 'FROM gcr.io/distroless/nodejs24-debian12\n');
    const a = await sh([PIN, noTag], env());
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('no tag');
    const arg = join(dir, 'Dockerfile.arg');
    writeFileSync(arg, 'ARG BASE=node:24-bookworm-slim\nFROM ${BASE}\n');
    const b = await sh([PIN, arg], env());
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('a build-arg');
  });
});
