// What `npm install` from git, `npm pack` and the npm scripts rely on in package.json.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  scripts: Record<string, string>;
  bin: Record<string, string>;
  files: string[];
  engines: { node: string };
};

describe('package.json', () => {
  it('has a prepare script that builds dist/, so an install from git gets a working package', () => {
    // npm runs prepare after `npm install` of a git dependency (with its devDependencies,
    // so tsc is there) and before `npm pack`/`npm publish`.
    expect(pkg.scripts.prepare).toMatch(/^(npm run build|tsc -p tsconfig\.build\.json)$/);
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
  });

  it('start and demo exec node, so the signal npm forwards reaches the proxy (test/packaging/npm-start.test.ts)', () => {
    expect(pkg.scripts.start).toMatch(/^exec node dist\/main\.js\b/);
    expect(pkg.scripts.demo).toMatch(/^exec node dist\/demo\/run-demo\.js\b/);
  });

  it('requires the Node major that CI tests and the image ships', () => {
    expect(pkg.engines.node).toBe('>=24.9');
    expect(process.versions.node.split('.')[0]).toBe('24');
  });

  it('npm pack ships dist/, config/ and schema/, and no sources or tests', async () => {
    // --ignore-scripts: prepare would rebuild dist/ while other tests read it.
    const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { maxBuffer: 16 * 1024 * 1024 });
    const [report] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    const files = (report?.files ?? []).map((f) => f.path);
    for (const f of ['package.json', 'dist/main.js', 'dist/index.js', 'dist/index.d.ts', 'config/outrigger.yaml', pkg.bin.outrigger as string]) {
      expect(files).toContain(f);
    }
    expect(files.some((f) => f.startsWith('schema/'))).toBe(true);
    expect(files.filter((f) => /^(src|test|scripts|helm|\.ci)\//.test(f))).toEqual([]);
  });
});
