// Rendered objects against the Kubernetes and prometheus-operator schemas, in two passes:
//  1. each model's own validate() (kubernetes-models, @kubernetes-models/prometheus-operator):
//     types, formats, enums and required fields, from the published OpenAPI schemas;
//  2. unknown fields, which those validators let through (the OpenAPI schemas do not close
//     objects): every object becomes a typed literal `const x: IDeployment = {...}` and the
//     TypeScript compiler's excess-property check reports any key the schema does not declare.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { REPO } from './helpers.js';

type Dict = Record<string, unknown>;

/** apiVersion/kind → [module, exported class]. Every kind the chart can render. */
const MODELS: Record<string, [string, string]> = {
  'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'ConfigMap'],
  'v1/Secret': ['kubernetes-models/v1/Secret', 'Secret'],
  'v1/Service': ['kubernetes-models/v1/Service', 'Service'],
  'v1/ServiceAccount': ['kubernetes-models/v1/ServiceAccount', 'ServiceAccount'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'Deployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1/PodDisruptionBudget', 'PodDisruptionBudget'],
  'networking.k8s.io/v1/NetworkPolicy': ['kubernetes-models/networking.k8s.io/v1/NetworkPolicy', 'NetworkPolicy'],
  'monitoring.coreos.com/v1/PodMonitor': ['@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor', 'PodMonitor'],
  'monitoring.coreos.com/v1/ServiceMonitor': ['@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', 'ServiceMonitor'],
  'monitoring.coreos.com/v1/PrometheusRule': ['@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule', 'PrometheusRule'],
};

const keyOf = (d: Dict): string => `${String(d.apiVersion)}/${String(d.kind)}`;
const label = (d: Dict): string => `${keyOf(d)} ${String((d.metadata as Dict | undefined)?.name)}`;

/** Pass 1: each object's model validate(). Returns one message per failure. */
export async function validateModels(docs: Dict[]): Promise<string[]> {
  const errors: string[] = [];
  for (const d of docs) {
    const entry = MODELS[keyOf(d)];
    if (!entry) {
      errors.push(`${label(d)}: no schema known for this kind`);
      continue;
    }
    const mod = (await import(entry[0])) as Record<string, new (data: unknown) => { validate(): void }>;
    const Model = mod[entry[1]] as new (data: unknown) => { validate(): void };
    try {
      new Model(d).validate();
    } catch (err) {
      errors.push(`${label(d)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** Pass 2: unknown fields and wrong types, by the TypeScript compiler over typed literals. */
export function checkUnknownFields(docs: Dict[]): string[] {
  const dir = mkdtempSync(join(REPO, 'test', 'k8s', '.typed-'));
  try {
    const imports = new Map<string, string>();
    const lines: string[] = [];
    docs.forEach((d, i) => {
      const entry = MODELS[keyOf(d)];
      if (!entry) return;
      let alias = imports.get(entry[0]);
      if (alias === undefined) imports.set(entry[0], (alias = `I${entry[1]}`));
      lines.push(`// ${label(d)}\nexport const o${i}: ${alias} = ${JSON.stringify(d, null, 1)};`);
    });
    const header = [...imports].map(([mod, alias]) => `import type { ${alias} } from '${mod}';`);
    const file = join(dir, 'objects.ts');
    writeFileSync(file, `${header.join('\n')}\n${lines.join('\n')}\n`);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      skipLibCheck: true,
      types: [],
    });
    const text = ts.sys.readFile(file) ?? '';
    return ts.getPreEmitDiagnostics(program).map((diag) => {
      const msg = ts.flattenDiagnosticMessageText(diag.messageText, '\n');
      if (diag.file && diag.start !== undefined && diag.file.fileName === file) {
        const before = text.slice(0, diag.start);
        const obj = before.lastIndexOf('\n// ');
        const what = obj >= 0 ? text.slice(obj + 4, text.indexOf('\n', obj + 4)) : '?';
        return `${what}: ${msg}`;
      }
      return msg;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
