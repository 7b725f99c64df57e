// The chart's alert rules (templates/prometheusrule.yaml) with the real promtool: rendered by
// real helm, then `promtool check rules` and `promtool test rules` with the scenarios in
// alerts.promtool.yaml. Each alert's runbook annotation must point at a section of
// docs/runbooks.md that exists.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { cleanupHelm, renderChart } from './helm.js';
import { CHART, REPO } from './helpers.js';

type Rule = { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> };
const PROMTOOL = '/usr/bin/promtool';
const tmp = mkdtempSync(join(tmpdir(), 'outrigger-alerts-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  cleanupHelm();
});

function rulesOf(values: Record<string, unknown> = {}): { groups: Array<{ name: string; rules: Rule[] }> } {
  const r = renderChart(CHART, { prometheusRule: { enabled: true, ...values } });
  const pr = r.docs.find((d) => d.kind === 'PrometheusRule') as { spec: { groups: Array<{ name: string; rules: Rule[] }> } };
  return { groups: pr.spec.groups };
}

function promtool(args: string[]): string {
  try {
    return execFileSync(PROMTOOL, args, { cwd: tmp, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} exited ${String(e.status)}:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

describe('alert rules', () => {
  it('pass promtool check rules, with the default values and with matchers', () => {
    writeFileSync(join(tmp, 'default.yaml'), stringifyYaml(rulesOf()));
    expect(promtool(['check', 'rules', 'default.yaml'])).toMatch(/SUCCESS: 7 rules found/);
    writeFileSync(join(tmp, 'matched.yaml'), stringifyYaml(rulesOf({ matchers: 'namespace="shop",job=~"outrigger.*"', errorRatioThreshold: 0.2 })));
    expect(promtool(['check', 'rules', 'matched.yaml'])).toMatch(/SUCCESS: 7 rules found/);
  });

  it('fire, and stay quiet, as the promtool unit tests expect', () => {
    writeFileSync(join(tmp, 'rules.yaml'), stringifyYaml(rulesOf()));
    copyFileSync(join(REPO, 'test', 'k8s', 'alerts.promtool.yaml'), join(tmp, 'alerts.promtool.yaml'));
    expect(promtool(['test', 'rules', 'alerts.promtool.yaml'])).toMatch(/SUCCESS/);
  });

  it('cover every alert the issue asks for, each tested by promtool', () => {
    const names = rulesOf().groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(names.sort()).toEqual(
      ['OutriggerBreakerFlapping', 'OutriggerConfigReloadFailed', 'OutriggerCriticalBreakerOpen', 'OutriggerInternalErrors', 'OutriggerRetryBudgetExhausted', 'OutriggerRouteErrorRatio', 'OutriggerTargetDown'].sort(),
    );
    const tests = readFileSync(join(REPO, 'test', 'k8s', 'alerts.promtool.yaml'), 'utf8');
    for (const n of names) expect(tests, n).toMatch(new RegExp(`alertname: ${n}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it('point each runbook annotation at an existing section of docs/runbooks.md', () => {
    const doc = readFileSync(join(REPO, 'docs', 'runbooks.md'), 'utf8');
    const anchors = new Set([...doc.matchAll(/^## (.+)$/gm)].map((m) => (m[1] as string).toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    for (const rule of rulesOf({ runbookBaseUrl: 'https://git.example/outrigger/blob/main/docs/runbooks.md' }).groups[0]?.rules ?? []) {
      const { runbook, runbook_url: url } = rule.annotations;
      expect(runbook, rule.alert).toBe(url);
      const m = /^https:\/\/git\.example\/outrigger\/blob\/main\/docs\/runbooks\.md#(.+)$/.exec(runbook ?? '');
      expect(m, `${rule.alert}: ${String(runbook)}`).not.toBeNull();
      expect(anchors.has(m?.[1] as string), `${rule.alert}: #${String(m?.[1])} in docs/runbooks.md`).toBe(true);
      expect(rule.labels.severity).toMatch(/^(warning|critical)$/);
    }
  });
});
