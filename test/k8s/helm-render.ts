// A small evaluator for the Go-template subset that the Outrigger chart uses, with the
// Sprig/Helm functions it calls. Helm cannot be installed on these machines, so the chart
// tests render the real templates with this instead of `helm template`, then parse the
// output as YAML. It is deliberately strict where Helm is lax (printing a map, an unknown
// function, a field of nil are errors), so that it catches mistakes rather than hides them.
// It is not a complete Go template engine: the CI workflow runs the real `helm template`.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';

type Dict = Record<string, unknown>;

// ------------------------------------------------------------------------------ lexing

interface TextItem {
  kind: 'text';
  text: string;
}
interface ActionItem {
  kind: 'action';
  body: string;
  where: string;
}
type Item = TextItem | ActionItem;

function lex(src: string, file: string): Item[] {
  const items: Item[] = [];
  let pos = 0;
  let trimNext = false;
  const lineAt = (i: number): number => src.slice(0, i).split('\n').length;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    let text = open < 0 ? src.slice(pos) : src.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      items.push({ kind: 'text', text });
      break;
    }
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 2;
    }
    items.push({ kind: 'text', text });
    // Find the closing delimiter, skipping quoted strings and comments.
    let i = start;
    let close = -1;
    while (i < src.length) {
      const c = src[i];
      if (src.startsWith('/*', i)) {
        const end = src.indexOf('*/', i + 2);
        if (end < 0) throw new Error(`${file}:${lineAt(open)}: unclosed comment`);
        i = end + 2;
      } else if (c === '"' || c === '`') {
        let j = i + 1;
        while (j < src.length && src[j] !== c) j += c === '"' && src[j] === '\\' ? 2 : 1;
        if (j >= src.length) throw new Error(`${file}:${lineAt(open)}: unterminated string`);
        i = j + 1;
      } else if (src.startsWith('}}', i)) {
        close = i;
        break;
      } else i++;
    }
    if (close < 0) throw new Error(`${file}:${lineAt(open)}: unclosed action`);
    let body = src.slice(start, close);
    if (/\s-$/.test(body)) {
      body = body.slice(0, -2);
      trimNext = true;
    }
    pos = close + 2;
    body = body.trim();
    if (body.startsWith('/*')) {
      if (!body.endsWith('*/')) throw new Error(`${file}:${lineAt(open)}: a comment must end at the delimiter`);
      continue;
    }
    items.push({ kind: 'action', body, where: `${file}:${lineAt(open)}` });
  }
  return items.filter((it) => it.kind === 'action' || it.text !== '');
}

// ------------------------------------------------------------------------------ parsing

type Operand =
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'lit'; v: unknown }
  | { t: 'ident'; name: string }
  | { t: 'sub'; p: Pipeline };
interface Pipeline {
  decl?: { names: string[]; assign: boolean };
  cmds: Operand[][];
  where: string;
}
type Node =
  | { t: 'text'; s: string }
  | { t: 'out'; p: Pipeline }
  | { t: 'if' | 'with'; p: Pipeline; body: Node[]; els: Node[] }
  | { t: 'range'; p: Pipeline; body: Node[]; els: Node[] }
  | { t: 'template'; name: string; p?: Pipeline; where: string };

type Tok = { k: 'str' | 'num' | 'ident' | 'field' | 'var' | 'punct'; v: string };

function tokenize(body: string, where: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < body.length) {
    const rest = body.slice(i);
    let m: RegExpExecArray | null;
    if (/^\s/.test(rest)) {
      i++;
    } else if ((m = /^"(?:[^"\\]|\\.)*"/.exec(rest))) {
      toks.push({ k: 'str', v: JSON.parse(m[0]) as string });
      i += m[0].length;
    } else if ((m = /^`[^`]*`/.exec(rest))) {
      toks.push({ k: 'str', v: m[0].slice(1, -1) });
      i += m[0].length;
    } else if ((m = /^-?\d+(\.\d+)?/.exec(rest))) {
      toks.push({ k: 'num', v: m[0] });
      i += m[0].length;
    } else if ((m = /^:=|^[()|,=]/.exec(rest))) {
      toks.push({ k: 'punct', v: m[0] });
      i += m[0].length;
    } else if ((m = /^\$[A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(rest))) {
      toks.push({ k: 'var', v: m[0] });
      i += m[0].length;
    } else if ((m = /^(\.[A-Za-z_][A-Za-z0-9_]*)+|^\./.exec(rest))) {
      toks.push({ k: 'field', v: m[0] });
      i += m[0].length;
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      toks.push({ k: 'ident', v: m[0] });
      i += m[0].length;
    } else throw new Error(`${where}: unexpected ${JSON.stringify(rest.slice(0, 10))} in action`);
  }
  return toks;
}

function parsePipeline(toks: Tok[], where: string): Pipeline {
  let pos = 0;
  const p: Pipeline = { cmds: [], where };
  // Declaration: $x := ... | $x = ... | $i, $v := ...
  const declEnd = toks.findIndex((t) => t.k === 'punct' && (t.v === ':=' || t.v === '='));
  if (declEnd > 0 && toks.slice(0, declEnd).every((t) => t.k === 'var' || (t.k === 'punct' && t.v === ','))) {
    p.decl = { names: toks.slice(0, declEnd).filter((t) => t.k === 'var').map((t) => t.v), assign: toks[declEnd]?.v === '=' };
    pos = declEnd + 1;
  }
  const parseOperand = (): Operand => {
    const t = toks[pos++];
    if (!t) throw new Error(`${where}: missing operand`);
    if (t.k === 'str') return { t: 'lit', v: t.v };
    if (t.k === 'num') return { t: 'lit', v: Number(t.v) };
    if (t.k === 'field') return { t: 'field', path: t.v === '.' ? [] : t.v.slice(1).split('.') };
    if (t.k === 'var') {
      const [name, ...path] = t.v.split('.');
      return { t: 'var', name: name as string, path };
    }
    if (t.k === 'ident') {
      if (t.v === 'true' || t.v === 'false') return { t: 'lit', v: t.v === 'true' };
      if (t.v === 'nil') return { t: 'lit', v: null };
      return { t: 'ident', name: t.v };
    }
    if (t.v === '(') {
      let depth = 1;
      const start = pos;
      while (pos < toks.length && depth > 0) {
        const u = toks[pos++] as Tok;
        if (u.k === 'punct' && u.v === '(') depth++;
        if (u.k === 'punct' && u.v === ')') depth--;
      }
      if (depth !== 0) throw new Error(`${where}: unbalanced parentheses`);
      const next = toks[pos];
      if (next && next.k === 'field') throw new Error(`${where}: field access on a parenthesized pipeline is not supported here`);
      return { t: 'sub', p: parsePipeline(toks.slice(start, pos - 1), where) };
    }
    throw new Error(`${where}: unexpected ${JSON.stringify(t.v)}`);
  };
  let cmd: Operand[] = [];
  while (pos < toks.length) {
    const t = toks[pos] as Tok;
    if (t.k === 'punct' && t.v === '|') {
      if (cmd.length === 0) throw new Error(`${where}: empty command in pipeline`);
      p.cmds.push(cmd);
      cmd = [];
      pos++;
      continue;
    }
    if (t.k === 'punct' && (t.v === ')' || t.v === ',' || t.v === '=' || t.v === ':=')) throw new Error(`${where}: unexpected ${t.v}`);
    cmd.push(parseOperand());
  }
  if (cmd.length === 0) throw new Error(`${where}: empty pipeline`);
  p.cmds.push(cmd);
  return p;
}

interface Parsed {
  main: Node[];
  defines: Map<string, Node[]>;
}

function parseTemplate(src: string, file: string): Parsed {
  const items = lex(src, file);
  const defines = new Map<string, Node[]>();
  let pos = 0;
  const keyword = (it: ActionItem): string => /^[a-z]+/.exec(it.body)?.[0] ?? '';
  // Parses nodes until one of `stops` (an action keyword); returns the nodes and the stop item.
  const parseList = (stops: string[]): { nodes: Node[]; stop?: ActionItem } => {
    const nodes: Node[] = [];
    while (pos < items.length) {
      const it = items[pos++] as Item;
      if (it.kind === 'text') {
        nodes.push({ t: 'text', s: it.text });
        continue;
      }
      const kw = keyword(it);
      const rest = it.body.slice(kw.length).trim();
      if (stops.includes(kw)) return { nodes, stop: it };
      if (kw === 'end' || kw === 'else') throw new Error(`${it.where}: unexpected {{${kw}}}`);
      if (kw === 'if' || kw === 'with' || kw === 'range') nodes.push(parseBlock(kw, rest, it.where));
      else if (kw === 'define') {
        const name = JSON.parse(rest) as string;
        const { nodes: body, stop } = parseList(['end']);
        if (!stop) throw new Error(`${it.where}: define "${name}" without end`);
        if (defines.has(name)) throw new Error(`${it.where}: template "${name}" defined twice`);
        defines.set(name, body);
      } else if (kw === 'template') {
        const m = /^("(?:[^"\\]|\\.)*")\s*(.*)$/.exec(rest);
        if (!m) throw new Error(`${it.where}: bad template action`);
        const node: Node = { t: 'template', name: JSON.parse(m[1] as string) as string, where: it.where };
        if (m[2]) node.p = parsePipeline(tokenize(m[2], it.where), it.where);
        nodes.push(node);
      } else if (kw === 'block' || kw === 'break' || kw === 'continue') {
        throw new Error(`${it.where}: {{${kw}}} is not supported by this evaluator`);
      } else nodes.push({ t: 'out', p: parsePipeline(tokenize(it.body, it.where), it.where) });
    }
    if (stops.length > 0) throw new Error(`${file}: missing {{end}}`);
    return { nodes };
  };
  const parseBlock = (kw: 'if' | 'with' | 'range', rest: string, where: string): Node => {
    if (!rest) throw new Error(`${where}: {{${kw}}} without a pipeline`);
    const p = parsePipeline(tokenize(rest, where), where);
    const { nodes: body, stop } = parseList(['else', 'end']);
    if (!stop) throw new Error(`${where}: {{${kw}}} without end`);
    let els: Node[] = [];
    if (keyword(stop) === 'else') {
      const elseRest = stop.body.slice(4).trim();
      if (elseRest.startsWith('if ') || elseRest.startsWith('with ')) {
        const kw2 = elseRest.startsWith('if ') ? 'if' : 'with';
        // `else if` shares the enclosing block's {{end}}.
        els = [parseBlock(kw2, elseRest.slice(kw2.length).trim(), stop.where)];
      } else {
        const r = parseList(['end']);
        if (!r.stop) throw new Error(`${where}: {{else}} without end`);
        els = r.nodes;
      }
    }
    return { t: kw, p, body, els };
  };
  const { nodes } = parseList([]);
  return { main: nodes, defines };
}

// ------------------------------------------------------------------------------ evaluation

const isMap = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v !== 'function';

function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`refusing to print ${Array.isArray(v) ? 'a list' : 'a map'} (Helm would print Go syntax): ${JSON.stringify(v)}`);
}

function goQuote(s: string): string {
  return JSON.stringify(s);
}

function toInt(v: unknown): number {
  if (typeof v === 'number') return Math.trunc(v);
  if (typeof v === 'string') {
    const n = Number(v);
    return /^\s*-?\d+\s*$/.test(v) && Number.isFinite(n) ? n : 0;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

function toFloat(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  }
  return 0;
}

function kindOf(v: unknown): string {
  if (v === null || v === undefined) return 'invalid';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  if (Array.isArray(v)) return 'slice';
  return 'map';
}

function printf(fmt: string, args: unknown[]): string {
  let i = 0;
  return fmt.replace(/%([-+ 0#]*\d*(?:\.\d+)?)([sdvqf%])/g, (_m, _flags: string, verb: string) => {
    if (verb === '%') return '%';
    const a = args[i++];
    if (verb === 'd') return String(toInt(a));
    if (verb === 'q') return goQuote(str(a));
    if (verb === 'f') return toFloat(a).toFixed(6);
    return str(a);
  });
}

function toYaml(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  return stringifyYaml(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replace(/\n/g, `\n${pad}`);
}

export interface RenderContext {
  Values: Dict;
  Release: Dict;
  Chart: Dict;
  Capabilities: Dict;
  Template: Dict;
  Files: Dict;
}

class Evaluator {
  private readonly defines = new Map<string, Node[]>();
  private readonly funcs: Record<string, (...args: unknown[]) => unknown>;
  private depth = 0;

  constructor(readonly root: RenderContext) {
    this.funcs = {
      include: (name, data) => this.runDefine(String(name), data),
      default: (def, ...rest) => {
        const v = rest[rest.length - 1];
        return rest.length === 0 || !truthy(v) ? def : v;
      },
      empty: (v) => !truthy(v),
      required: (msg, v) => {
        if (v === null || v === undefined || v === '') throw new Error(String(msg));
        return v;
      },
      fail: (msg) => {
        throw new Error(`fail: ${String(msg)}`);
      },
      toString: (v: unknown) => (v === null || v === undefined ? '<nil>' : str(v)),
      trim: (s) => str(s).trim(),
      trunc: (n, s) => {
        const t = str(s);
        const k = toInt(n);
        return k >= 0 ? t.slice(0, k) : t.slice(t.length + k);
      },
      trimSuffix: (suf, s) => (str(s).endsWith(str(suf)) ? str(s).slice(0, str(s).length - str(suf).length) : str(s)),
      trimPrefix: (pre, s) => (str(s).startsWith(str(pre)) ? str(s).slice(str(pre).length) : str(s)),
      contains: (sub, s) => str(s).includes(str(sub)),
      hasPrefix: (pre, s) => str(s).startsWith(str(pre)),
      hasSuffix: (suf, s) => str(s).endsWith(str(suf)),
      replace: (a, b, s) => str(s).split(str(a)).join(str(b)),
      lower: (s) => str(s).toLowerCase(),
      upper: (s) => str(s).toUpperCase(),
      printf: (fmt, ...args) => printf(str(fmt), args),
      quote: (...args) => args.filter((a) => a !== null && a !== undefined).map((a) => goQuote(str(a))).join(' '),
      squote: (...args) => args.filter((a) => a !== null && a !== undefined).map((a) => `'${str(a)}'`).join(' '),
      toYaml: (v) => toYaml(v),
      toJson: (v) => JSON.stringify(v ?? null),
      fromYaml: (s) => parseYaml(str(s)) as unknown,
      indent: (n, s) => indent(toInt(n), str(s)),
      nindent: (n, s) => `\n${indent(toInt(n), str(s))}`,
      dict: (...kv) => {
        if (kv.length % 2 !== 0) throw new Error('dict needs an even number of arguments');
        const out: Dict = {};
        for (let i = 0; i < kv.length; i += 2) out[str(kv[i])] = kv[i + 1];
        return out;
      },
      list: (...items) => items,
      get: (m, k) => (isMap(m) && str(k) in m ? m[str(k)] : ''),
      hasKey: (m, k) => isMap(m) && Object.prototype.hasOwnProperty.call(m, str(k)),
      dig: (...args) => {
        const m = args[args.length - 1];
        const def = args[args.length - 2];
        let cur: unknown = m;
        for (const k of args.slice(0, -2)) {
          if (!isMap(cur) || !(str(k) in cur)) return def;
          cur = cur[str(k)];
        }
        return cur;
      },
      index: (c, ...keys) => {
        let cur = c;
        for (const k of keys) {
          if (Array.isArray(cur)) {
            const i = toInt(k);
            if (i < 0 || i >= cur.length) throw new Error(`index out of range: ${i}`);
            cur = cur[i];
          } else if (isMap(cur)) cur = cur[str(k)];
          else if (cur === null || cur === undefined) return undefined;
          else throw new Error(`can't index item of type ${kindOf(cur)}`);
        }
        return cur;
      },
      kindIs: (kind, v) => kindOf(v) === str(kind),
      eq: (a, ...bs) => bs.some((b) => a === b),
      ne: (a, b) => a !== b,
      lt: (a, b) => toFloat(a) < toFloat(b),
      le: (a, b) => toFloat(a) <= toFloat(b),
      gt: (a, b) => toFloat(a) > toFloat(b),
      ge: (a, b) => toFloat(a) >= toFloat(b),
      not: (v) => !truthy(v),
      int: (v) => toInt(v),
      int64: (v) => toInt(v),
      float64: (v) => toFloat(v),
      add: (...xs) => xs.reduce<number>((s, x) => s + toInt(x), 0),
      sub: (a, b) => toInt(a) - toInt(b),
      mul: (...xs) => xs.reduce<number>((s, x) => s * toInt(x), 1),
      div: (a, b) => Math.trunc(toInt(a) / toInt(b)),
      addf: (...xs) => xs.reduce<number>((s, x) => s + toFloat(x), 0),
      mulf: (...xs) => xs.reduce<number>((s, x) => s * toFloat(x), 1),
      divf: (a, ...bs) => bs.reduce<number>((s, x) => s / toFloat(x), toFloat(a)),
      ceil: (v) => Math.ceil(toFloat(v)),
      floor: (v) => Math.floor(toFloat(v)),
      max: (...xs) => Math.max(...xs.map(toInt)),
      regexMatch: (re, s) => new RegExp(str(re)).test(str(s)),
      regexFind: (re, s) => new RegExp(str(re)).exec(str(s))?.[0] ?? '',
      b64enc: (s) => Buffer.from(str(s)).toString('base64'),
      b64dec: (s) => Buffer.from(str(s), 'base64').toString(),
      randAlphaNum: (n) => {
        const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
        let out = '';
        for (let i = 0; i < toInt(n); i++) out += abc[Math.floor(Math.random() * abc.length)];
        return out;
      },
      // `helm template` has no cluster: lookup returns an empty map.
      lookup: () => ({}),
    };
  }

  private func(name: string): ((...args: unknown[]) => unknown) | undefined {
    return Object.prototype.hasOwnProperty.call(this.funcs, name) ? this.funcs[name] : undefined;
  }

  addTemplates(p: Parsed): void {
    for (const [name, body] of p.defines) {
      if (this.defines.has(name)) throw new Error(`template "${name}" defined twice`);
      this.defines.set(name, body);
    }
  }

  runDefine(name: string, data: unknown): string {
    const body = this.defines.get(name);
    if (!body) throw new Error(`no template named "${name}"`);
    if (++this.depth > 100) throw new Error(`template recursion too deep in "${name}"`);
    try {
      return this.exec(body, data, [['$', data]]);
    } finally {
      this.depth--;
    }
  }

  render(nodes: Node[]): string {
    return this.exec(nodes, this.root, [['$', this.root]]);
  }

  private exec(nodes: Node[], dot: unknown, vars: Array<[string, unknown]>): string {
    let out = '';
    for (const n of nodes) {
      switch (n.t) {
        case 'text':
          out += n.s;
          break;
        case 'out': {
          const v = this.pipeline(n.p, dot, vars);
          if (!n.p.decl) out += this.wrap(n.p.where, () => str(v));
          break;
        }
        case 'template':
          out += this.runDefine(n.name, n.p ? this.pipeline(n.p, dot, vars) : undefined);
          break;
        case 'if':
        case 'with': {
          const mark = vars.length;
          const v = this.pipeline(n.p, dot, vars);
          if (truthy(v)) out += this.exec(n.body, n.t === 'with' ? v : dot, vars);
          else out += this.exec(n.els, dot, vars);
          vars.length = mark;
          break;
        }
        case 'range': {
          const mark = vars.length;
          const decl = n.p.decl;
          const p: Pipeline = { cmds: n.p.cmds, where: n.p.where };
          const v = this.pipeline(p, dot, vars);
          const entries: Array<[unknown, unknown]> = Array.isArray(v)
            ? v.map((x, i) => [i, x])
            : isMap(v)
              ? Object.keys(v)
                  .sort()
                  .map((k) => [k, v[k]])
              : v === null || v === undefined
                ? []
                : (() => {
                    throw new Error(`${n.p.where}: range can't iterate over ${JSON.stringify(v)}`);
                  })();
          if (entries.length === 0) out += this.exec(n.els, dot, vars);
          for (const [k, x] of entries) {
            const inner = vars.length;
            if (decl?.names.length === 1) vars.push([decl.names[0] as string, x]);
            else if (decl?.names.length === 2) vars.push([decl.names[0] as string, k], [decl.names[1] as string, x]);
            out += this.exec(n.body, x, vars);
            vars.length = inner;
          }
          vars.length = mark;
          break;
        }
      }
    }
    return out;
  }

  private wrap<T>(where: string, f: () => T): T {
    try {
      return f();
    } catch (err) {
      const e = err as Error;
      if (e.message.startsWith('at ')) throw e;
      throw new Error(`at ${where}: ${e.message}`);
    }
  }

  private pipeline(p: Pipeline, dot: unknown, vars: Array<[string, unknown]>): unknown {
    return this.wrap(p.where, () => {
      let piped: unknown;
      let hasPiped = false;
      for (const cmd of p.cmds) {
        piped = this.command(cmd, dot, vars, hasPiped, piped);
        hasPiped = true;
      }
      if (p.decl) {
        const name = p.decl.names[0] as string;
        if (p.decl.assign) {
          const slot = [...vars].reverse().find(([n]) => n === name);
          if (!slot) throw new Error(`undefined variable ${name}`);
          slot[1] = piped;
        } else vars.push([name, piped]);
      }
      return piped;
    });
  }

  private command(cmd: Operand[], dot: unknown, vars: Array<[string, unknown]>, hasPiped: boolean, piped: unknown): unknown {
    const [head, ...rest] = cmd as [Operand, ...Operand[]];
    const argv = (): unknown[] => {
      const a = rest.map((o) => this.operand(o, dot, vars));
      if (hasPiped) a.push(piped);
      return a;
    };
    if (head.t === 'ident') {
      if (head.name === 'and' || head.name === 'or') {
        // Go evaluates and/or lazily, returning the deciding argument.
        const thunks: Array<() => unknown> = rest.map((o) => () => this.operand(o, dot, vars));
        if (hasPiped) thunks.push(() => piped);
        let last: unknown;
        for (const t of thunks) {
          last = t();
          if (head.name === 'and' ? !truthy(last) : truthy(last)) return last;
        }
        return last;
      }
      const f = this.func(head.name);
      if (!f) throw new Error(`function "${head.name}" not defined`);
      return f(...argv());
    }
    const v = this.operand(head, dot, vars, true);
    if (typeof v === 'function') return (v as (...a: unknown[]) => unknown)(...argv());
    if (rest.length > 0 || hasPiped) throw new Error(`can't give an argument to a non-function`);
    return v;
  }

  private operand(o: Operand, dot: unknown, vars: Array<[string, unknown]>, allowMethod = false): unknown {
    switch (o.t) {
      case 'lit':
        return o.v;
      case 'sub':
        return this.pipeline(o.p, dot, vars);
      case 'ident': {
        const f = this.func(o.name);
        if (!f) throw new Error(`function "${o.name}" not defined`);
        return f();
      }
      case 'field':
        return this.walk(dot, o.path, allowMethod, '');
      case 'var': {
        const slot = [...vars].reverse().find(([n]) => n === o.name);
        if (!slot) throw new Error(`undefined variable ${o.name}`);
        return this.walk(slot[1], o.path, allowMethod, o.name);
      }
    }
  }

  private walk(v: unknown, path: string[], allowMethod: boolean, prefix: string): unknown {
    let cur = v;
    let seen = prefix;
    for (const [i, key] of path.entries()) {
      if (cur === null || cur === undefined) throw new Error(`nil pointer evaluating interface {}.${key} (at ${seen || '.'})`);
      if (!isMap(cur)) throw new Error(`can't evaluate field ${key} in type ${kindOf(cur)}`);
      cur = cur[key];
      seen += `.${key}`;
      if (typeof cur === 'function' && !(allowMethod && i === path.length - 1)) cur = (cur as () => unknown)();
    }
    return cur;
  }
}

// ------------------------------------------------------------------------------ the chart

export interface Rendered {
  /** Output per template file (templates/x.yaml), before splitting into documents. */
  files: Map<string, string>;
  /** Every non-empty YAML document of every .yaml template, parsed. */
  docs: Dict[];
  notes: string;
}

export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Dict = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k]; // Helm: a null in user values removes the key
    else out[k] = deepMerge(base[k], v);
  }
  return out;
}

export function chartValues(chartDir: string, overrides: Dict = {}): Dict {
  const defaults = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Dict;
  return deepMerge(defaults, overrides) as Dict;
}

/** Parses every template file of the chart (syntax only); throws on the first error. */
export function parseChartTemplates(chartDir: string): Map<string, Parsed> {
  const dir = join(chartDir, 'templates');
  const out = new Map<string, Parsed>();
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(ya?ml|tpl|txt)$/.test(f)) continue;
    out.set(f, parseTemplate(readFileSync(join(dir, f), 'utf8'), `templates/${f}`));
  }
  return out;
}

export function renderChart(chartDir: string, overrides: Dict = {}, release = { name: 'demo', namespace: 'default' }): Rendered {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Dict;
  const values = chartValues(chartDir, overrides);
  const root: RenderContext = {
    Values: values,
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description },
    Capabilities: { KubeVersion: { Version: 'v1.30.0', Major: '1', Minor: '30' } },
    Template: { BasePath: 'outrigger/templates' },
    Files: { Get: (p: unknown) => readFileSync(join(chartDir, str(p)), 'utf8') },
  };
  const parsed = parseChartTemplates(chartDir);
  const ev = new Evaluator(root);
  for (const p of parsed.values()) ev.addTemplates(p);
  const files = new Map<string, string>();
  const docs: Dict[] = [];
  let notes = '';
  for (const [f, p] of parsed) {
    if (f.startsWith('_')) continue;
    const text = ev.render(p.main);
    if (f === 'NOTES.txt') {
      notes = text;
      continue;
    }
    files.set(f, text);
    for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
      if (doc.errors.length > 0) throw new Error(`templates/${f}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}\n${text}`);
      const js = doc.toJS() as unknown;
      if (js === null || js === undefined) continue;
      if (!isMap(js)) throw new Error(`templates/${f}: a document is not a mapping`);
      docs.push(js);
    }
  }
  return { files, docs, notes };
}
