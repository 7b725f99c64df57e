// GET / on the admin port: the status page. One self-contained document (inline CSS and
// JS, no external asset) under a strict Content-Security-Policy: a fresh nonce per response
// allows exactly its own <style> and <script>; it may only fetch from its own origin.
// The page polls GET /stats and GET /events about once a second and updates in place, so
// keyboard focus survives the refresh.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

export function statusPageCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export function serveStatusPage(res: ServerResponse, head: boolean): void {
  const nonce = randomBytes(18).toString('base64');
  const body = Buffer.from(renderStatusPage(nonce));
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(body.length),
    'content-security-policy': statusPageCsp(nonce),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  });
  res.end(head ? undefined : body);
}

export function renderStatusPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outrigger status</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
<header>
  <h1>Outrigger <span id="overall" class="badge" aria-label="overall health">…</span></h1>
  <dl id="meta">
    <div><dt>Version</dt><dd id="m-version">…</dd></div>
    <div><dt>Node</dt><dd id="m-node">…</dd></div>
    <div><dt>Uptime</dt><dd id="m-uptime">…</dd></div>
    <div><dt>Config</dt><dd id="m-config">…</dd></div>
    <div><dt>Config hash</dt><dd id="m-hash">…</dd></div>
    <div><dt>Last reload</dt><dd id="m-reload">…</dd></div>
    <div><dt>Draining</dt><dd id="m-draining">…</dd></div>
  </dl>
  <p id="conn" role="status" aria-live="polite">connecting…</p>
</header>
<main>
<section aria-labelledby="routes-h">
  <h2 id="routes-h">Routes</h2>
  <div id="auth" hidden>
    <label for="token">Admin token (required for isolate and reset)</label>
    <input id="token" type="password" autocomplete="off" spellcheck="false">
  </div>
  <p id="result" role="status" aria-live="polite"></p>
  <table id="routes">
    <thead><tr>
      <th scope="col">Route</th><th scope="col">Health</th><th scope="col">Req/s</th><th scope="col">Errors</th>
      <th scope="col">p50</th><th scope="col">p99</th><th scope="col">Retries/s</th><th scope="col">Budget used</th>
      <th scope="col">Fallbacks/s</th><th scope="col">In flight</th><th scope="col">Breaker</th><th scope="col">Flapping</th>
      <th scope="col">Last 5 min</th><th scope="col">Actions</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <p class="legend">Sparklines: solid line requests per second, dashed line error ratio (0–100%), 10 s per point.</p>
</section>
<section aria-labelledby="events-h">
  <h2 id="events-h">Events</h2>
  <label for="sev">Minimum severity</label>
  <select id="sev">
    <option value="info">info</option><option value="warning">warning</option>
    <option value="error">error</option><option value="critical">critical</option>
  </select>
  <ol id="events" aria-live="off"></ol>
</section>
</main>
<script nonce="${nonce}">${JS}</script>
</body>
</html>
`;
}

const CSS = `
:root{--bg:#fff;--fg:#1b1f24;--mute:#59636e;--line:#d0d7de;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--crit:#8b0820;--info:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;--line:#30363d;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--crit:#ff7b72;--info:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;padding:12px 16px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:16px 0 8px}
dl{display:flex;flex-wrap:wrap;gap:4px 20px;margin:0}dl div{display:flex;gap:6px}dt{color:var(--mute)}dd{margin:0;font-variant-numeric:tabular-nums;word-break:break-all}
#conn{color:var(--mute);margin:6px 0 0}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:middle}
th{color:var(--mute);font-weight:600;font-size:12px}
.badge{display:inline-block;padding:1px 6px;border-radius:4px;border:1px solid currentColor;font-size:12px;font-weight:600;text-transform:uppercase}
.s-closed,.l-ok{color:var(--ok)}.s-half-open,.l-warning,.sev-warning{color:var(--warn)}.s-open,.s-isolated,.sev-error{color:var(--bad)}.l-critical,.sev-critical{color:var(--crit)}.sev-info{color:var(--info)}
.flap{color:var(--bad)}.noflap{color:var(--mute)}
.sub{display:block;color:var(--mute);font-size:12px}
button{font:inherit;padding:2px 8px;margin:1px;border:1px solid var(--line);border-radius:4px;background:transparent;color:var(--fg);cursor:pointer}
button:focus-visible,select:focus-visible,input:focus-visible{outline:2px solid var(--info);outline-offset:1px}
input,select{font:inherit;padding:2px 4px;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:4px}
#auth{margin:0 0 8px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}#auth[hidden]{display:none}
#result{min-height:1.4em;margin:0 0 6px}
svg{display:block}.spark-rps{stroke:var(--info);fill:none;stroke-width:1.5}.spark-err{stroke:var(--bad);fill:none;stroke-width:1.5;stroke-dasharray:3 2}
.legend{color:var(--mute);font-size:12px}
ol{list-style:none;padding:0;margin:8px 0}li{border-bottom:1px solid var(--line);padding:4px 0}
li time{color:var(--mute);margin-right:6px;font-variant-numeric:tabular-nums}
@media (max-width:760px){
  thead{position:absolute;left:-9999px}
  table,tbody,tr,td{display:block;width:100%}
  tr{border:1px solid var(--line);border-radius:6px;margin:0 0 10px;padding:4px}
  td{display:flex;justify-content:space-between;gap:8px;border:0;padding:2px 4px}
  td::before{content:attr(data-label);color:var(--mute);font-size:12px}
}
`;

// Plain ES2020 in the browser. Builds DOM with textContent only: route and breaker names
// come from the config and are never parsed as HTML.
const JS = `
(function () {
  'use strict';
  var COLS = ['Route','Health','Req/s','Errors','p50','p99','Retries/s','Budget used','Fallbacks/s','In flight','Breaker','Flapping','Last 5 min','Actions'];
  var rows = new Map();
  var tbody = document.querySelector('#routes tbody');
  var $ = function (id) { return document.getElementById(id); };
  var tokenRequired = false;
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function ms(v) { return v === null ? '–' : (v < 10 ? v.toFixed(2) : Math.round(v)) + ' ms'; }
  function pct(v) { return (Math.round(v * 1000) / 10) + '%'; }
  function dur(s) { if (s < 60) return s + 's'; if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's'; return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm'; }
  function badge(node, cls, text) { node.className = 'badge ' + cls; node.textContent = text; }
  function spark(svg, data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var NS = 'http://www.w3.org/2000/svg', w = 120, h = 28, n = data.rps.length;
    var max = Math.max.apply(null, data.rps.concat([1]));
    function line(vals, top, cls) {
      var p = document.createElementNS(NS, 'polyline');
      p.setAttribute('class', cls);
      p.setAttribute('points', vals.map(function (v, i) { return (i * w / Math.max(1, n - 1)).toFixed(1) + ',' + (h - 1 - (v / top) * (h - 2)).toFixed(1); }).join(' '));
      svg.appendChild(p);
    }
    line(data.rps, max, 'spark-rps'); line(data.errorRatio, 1, 'spark-err');
    var t = document.createElementNS(NS, 'title');
    t.textContent = 'last 5 min: up to ' + max + ' req/s, latest ' + data.rps[n - 1] + ' req/s, ' + pct(data.errorRatio[n - 1]) + ' errors';
    svg.appendChild(t);
  }
  function act(name, action, btn) {
    var headers = {};
    var tok = $('token').value;
    if (tokenRequired && !tok) { $('result').textContent = 'Enter the admin token first, then press ' + action + ' again.'; $('auth').hidden = false; $('token').focus(); return; }
    if (tok) headers.authorization = 'Bearer ' + tok;
    btn.disabled = true;
    fetch('/breakers/' + encodeURIComponent(name) + '/' + action, { method: 'POST', headers: headers })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; }); })
      .then(function (r) {
        if (r.ok) $('result').textContent = action + ' ' + name + ': done, breaker is now ' + r.body.state + '.';
        else { $('result').textContent = action + ' ' + name + ' failed (' + r.status + '): ' + (r.body.error ? r.body.error.message : ''); if (r.status === 401) { $('auth').hidden = false; $('token').focus(); } }
        poll();
      })
      .catch(function (e) { $('result').textContent = action + ' ' + name + ' failed: ' + e; })
      .finally(function () { btn.disabled = false; });
  }
  function row(r) {
    var x = rows.get(r.name);
    if (x) return x;
    var tr = el('tr'); tr.dataset.route = r.name;
    var cells = COLS.map(function (c) { var td = el('td'); td.dataset.label = c; tr.appendChild(td); return td; });
    cells[0].appendChild(el('strong', '', r.name));
    var dl = el('span', 'sub'); cells[0].appendChild(dl);
    var health = el('span'); cells[1].appendChild(health);
    var state = el('span'); var stateSub = el('span', 'sub'); cells[10].appendChild(state); cells[10].appendChild(stateSub);
    var flap = el('span'); cells[11].appendChild(flap);
    var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('width', '120'); svg.setAttribute('height', '28'); svg.setAttribute('role', 'img'); svg.setAttribute('viewBox', '0 0 120 28');
    cells[12].appendChild(svg);
    var iso = el('button', '', 'Isolate'); iso.type = 'button';
    var rst = el('button', '', 'Reset'); rst.type = 'button';
    cells[13].appendChild(iso); cells[13].appendChild(rst);
    x = { dl: dl, tr: tr, c: cells, health: health, state: state, stateSub: stateSub, flap: flap, svg: svg, iso: iso, rst: rst, breaker: null };
    iso.addEventListener('click', function () { if (x.breaker) act(x.breaker, 'isolate', iso); });
    rst.addEventListener('click', function () { if (x.breaker) act(x.breaker, 'reset', rst); });
    rows.set(r.name, x);
    tbody.appendChild(tr);
    return x;
  }
  function render(s) {
    $('m-version').textContent = s.version; $('m-node').textContent = s.node; $('m-uptime').textContent = dur(s.uptimeSeconds);
    $('m-config').textContent = s.config.path; $('m-hash').textContent = s.config.hash.slice(0, 12);
    var lr = s.config.lastReload;
    $('m-reload').textContent = lr ? lr.at + ' ' + lr.result + (lr.problems ? ': ' + lr.problems.join('; ') : '') : 'none (loaded ' + s.config.loadedAt + ')';
    $('m-draining').textContent = s.draining ? 'yes, draining' : 'no';
    badge($('overall'), 'l-' + s.health, s.health);
    tokenRequired = !!s.adminToken; if (tokenRequired) $('auth').hidden = false;
    var seen = new Set();
    s.routes.forEach(function (r) {
      seen.add(r.name);
      var x = row(r), c = x.c;
      badge(x.health, 'l-' + r.health, r.health);
      c[2].textContent = String(r.rps);
      c[3].textContent = pct(r.errorRatio);
      c[4].textContent = ms(r.latencyMs.p50); c[5].textContent = ms(r.latencyMs.p99);
      c[6].textContent = String(r.retriesPerSecond);
      c[7].textContent = r.retryBudget.enabled ? pct(r.retryBudget.usePercent / 100) + (r.retryBudget.exhausted ? ' (' + r.retryBudget.exhausted + ' refused)' : '') : 'off';
      var fb = Object.keys(r.fallbacksPerSecond).filter(function (k) { return r.fallbacksPerSecond[k] > 0; }).map(function (k) { return k + ' ' + r.fallbacksPerSecond[k]; });
      c[8].textContent = fb.length ? fb.join(', ') : '0';
      c[9].textContent = r.inflight + ' / ' + r.concurrency.max + (r.concurrency.queue ? ' (+' + r.concurrency.queue + ' queue)' : '');
      var b = r.breaker;
      x.breaker = b ? b.name : null;
      x.iso.disabled = x.rst.disabled = !b;
      x.iso.setAttribute('aria-label', 'Isolate breaker ' + (b ? b.name : 'none') + ' of route ' + r.name);
      x.rst.setAttribute('aria-label', 'Reset breaker ' + (b ? b.name : 'none') + ' of route ' + r.name);
      if (b) {
        badge(x.state, 's-' + b.state, b.state);
        x.state.dataset.state = b.state;
        x.stateSub.textContent = b.name + ', for ' + dur(b.secondsInState) + (b.lastTransition ? '; last ' + b.lastTransition.from + ' → ' + b.lastTransition.to + ' at ' + b.lastTransition.at.slice(11, 19) : '');
        if (b.flapping) badge(x.flap, 'flap', 'flapping ' + b.flapping.percent + '% ' + b.flapping.pattern);
        else { x.flap.className = 'noflap'; x.flap.textContent = 'stable'; }
      } else { x.state.className = ''; x.state.textContent = 'no breaker'; x.stateSub.textContent = ''; x.flap.textContent = '–'; }
      spark(x.svg, r.sparkline);
      x.dl.textContent = r.deadLetters ? ' dead letters: ' + r.deadLetters.entries + (r.deadLetters.evicted ? ' (' + r.deadLetters.evicted + ' evicted)' : '') : '';
    });
    rows.forEach(function (x, name) { if (!seen.has(name)) { x.tr.remove(); rows.delete(name); } });
  }
  // Events are fetched incrementally: everything last seen after the newest lastSeen known,
  // less a second of overlap (merged by id), so a full ring is sent once, not every second.
  var events = new Map(), cursor = null;
  var SEV = ['info', 'warning', 'error', 'critical'];
  function mergeEvents(list) {
    list.forEach(function (e) {
      events.set(e.id, e);
      var t = Date.parse(e.lastSeen);
      if (cursor === null || t > cursor) cursor = t;
    });
    if (events.size > 1000) Array.from(events.keys()).sort(function (a, b) { return a - b; }).slice(0, events.size - 1000).forEach(function (id) { events.delete(id); });
  }
  function shownEvents() {
    var min = SEV.indexOf($('sev').value);
    return Array.from(events.values()).filter(function (e) { return SEV.indexOf(e.severity) >= min; }).sort(function (a, b) { return b.id - a.id; });
  }
  function renderEvents(list) {
    var ol = $('events');
    while (ol.firstChild) ol.removeChild(ol.firstChild);
    if (!list.length) { ol.appendChild(el('li', '', 'No events at this severity.')); return; }
    list.slice(0, 200).forEach(function (e) {
      var li = el('li'); li.dataset.severity = e.severity;
      var t = el('time', '', e.lastSeen.replace('T', ' ').slice(0, 19)); t.setAttribute('datetime', e.lastSeen);
      li.appendChild(t);
      li.appendChild(el('span', 'badge sev-' + e.severity, e.severity));
      li.appendChild(document.createTextNode(' ' + e.kind + (e.route ? ' route ' + e.route : '') + (e.breaker ? ' breaker ' + e.breaker : '') + ': ' + e.message + (e.count > 1 ? ' (×' + e.count + ', since ' + e.firstSeen.slice(11, 19) + ')' : '')));
      ol.appendChild(li);
    });
  }
  var timer = null, busy = false;
  function poll() {
    if (busy) return;
    busy = true;
    if (timer) clearTimeout(timer);
    Promise.all([
      fetch('/stats', { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error('/stats ' + r.status); return r.json(); }),
      fetch('/events' + (cursor === null ? '' : '?since=' + (cursor - 1000)), { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error('/events ' + r.status); return r.json(); })
    ]).then(function (res) {
      render(res[0]); mergeEvents(res[1].events); renderEvents(shownEvents());
      $('conn').textContent = 'live, updated ' + new Date().toLocaleTimeString();
    }).catch(function (e) {
      $('conn').textContent = 'not updating: ' + e.message + ' (retrying)';
    }).finally(function () { busy = false; timer = setTimeout(poll, 1000); });
  }
  $('sev').addEventListener('change', function () { renderEvents(shownEvents()); });
  poll();
})();
`;
