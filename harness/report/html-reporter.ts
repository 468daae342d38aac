// report.html: one self-contained page (inline CSS and script, the run's data inline as JSON, no network) that shows
// a run the way an engineer opening a failed nightly wants it: totals, cases with filters, and per case its step tree
// (the failing step open), the error, each machine's facts and console log lined up with the steps (click a step and
// the console scrolls to that second), artifacts and the case's output. Console logs are embedded up to
// LOG_EMBED_BYTES each (their end, where failures are) and linked in full.
import { open, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import type { CaseResult } from '../runner/results.ts';
import { AtomicFile } from './atomic-file.ts';
import { TOPOLOGY_CSS, TOPOLOGY_SCRIPT } from './html-topology.ts';
import { gitCommit } from './git-commit.ts';
import type { Reporter, RunInfo, RunSummary } from './reporter.ts';

/** How much of each console log goes into the page; the rest is a link away. */
export const LOG_EMBED_BYTES = 192 * 1024;

export class HtmlReporter implements Reporter {
  private readonly file: AtomicFile;
  private readonly dir: string;
  private run: RunInfo | undefined;
  private readonly results: CaseResult[] = [];

  constructor(path: string, outputDir: string) {
    this.file = new AtomicFile(path);
    this.dir = outputDir;
  }

  onRunBegin(run: RunInfo): void {
    this.run = run;
  }

  async onCaseEnd(r: CaseResult): Promise<void> {
    this.results.push(r);
    await this.write(undefined);
  }

  async onRunEnd(summary: RunSummary): Promise<void> {
    this.results.splice(0, this.results.length, ...summary.results);
    await this.write(summary);
  }

  private async write(summary: RunSummary | undefined): Promise<void> {
    await writeHtmlReport(this.file, this.dir, {
      runId: this.run?.runId ?? '',
      startedAt: this.run?.startedAt ?? '',
      commit: gitCommit(),
      finished: !!summary,
      durationMs: summary?.durationMs,
      exitCode: summary?.exitCode,
      interrupted: summary?.interrupted ?? false,
      planned: this.run?.cases.length ?? this.results.length,
      results: this.results,
    });
  }
}

/** What report.html shows: a run (or shards merged) and its cases. */
export interface HtmlReportRun {
  runId: string;
  startedAt: string;
  commit: string | undefined;
  finished: boolean;
  durationMs: number | undefined;
  exitCode: number | undefined;
  interrupted: boolean;
  planned: number;
  results: CaseResult[];
}

/**
 * Writes report.html for `run` into `file`, which lives in `dir`: console logs and attachments are linked relative to
 * `dir` (a merged report links into its shards' folders with "../"), and each log's end is embedded.
 */
export async function writeHtmlReport(file: AtomicFile | string, dir: string, run: HtmlReportRun, opts: { linkUp?: boolean } = {}): Promise<void> {
  const href = (path: string): string => {
    const rel = relative(dir, path);
    return rel.startsWith('..') && !opts.linkUp ? `file://${path}` : rel.split('/').map((p) => (p === '..' ? p : encodeURIComponent(p))).join('/');
  };
  const cases = await Promise.all(
    run.results.map(async (r) => ({
      ...r,
      attempts: await Promise.all(
        r.attempts.map(async (a) => ({
          ...a,
          machines: await Promise.all(a.machines.map(async (m) => ({ ...m, logHref: href(m.logPath), log: await tail(m.logPath, LOG_EMBED_BYTES) }))),
          artifacts: a.artifacts.map((x) => ({ ...x, href: href(x.path) })),
        })),
      ),
    })),
  );
  const { results: _results, ...head } = run;
  const out = typeof file === 'string' ? new AtomicFile(file) : file;
  await out.write(() => renderHtml({ ...head, cases }));
}

/** The last `max` bytes of a file (from a line start), and whether it was cut. */
async function tail(path: string, max: number): Promise<{ text: string; cut: boolean } | undefined> {
  try {
    const size = (await stat(path)).size;
    const fh = await open(path, 'r');
    try {
      const start = Math.max(0, size - max);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      let text = buf.toString('utf8');
      if (start > 0) text = text.slice(text.indexOf('\n') + 1);
      return { text, cut: start > 0 };
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

/** The page: data as JSON in a script element (with "<" escaped so no text can close it), then the viewer. */
export function renderHtml(data: unknown): string {
  const json = JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'">
<title>fleetlab report</title>
<style>${CSS}${TOPOLOGY_CSS}</style></head>
<body><header id="top"></header><nav id="filters"></nav><main id="cases"></main>
<script type="application/json" id="fleetlab-data">${json}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}

const CSS = `
:root { --pass: #1a7f37; --fail: #cf222e; --err: #bc4c00; --skip: #6e7781; --flaky: #9a6700; --bg: #f6f8fa; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #1f2328; }
header { padding: 12px 20px; background: #24292f; color: #fff; display: flex; flex-wrap: wrap; gap: 16px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0 12px 0 0; }
header .meta { color: #c9d1d9; font-size: 12px; }
.totals span { margin-right: 12px; font-weight: 600; }
nav { padding: 10px 20px; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 8px; align-items: center; background: var(--bg); }
nav button { border: 1px solid var(--line); background: #fff; border-radius: 14px; padding: 2px 10px; cursor: pointer; }
nav button.on { background: #24292f; color: #fff; }
nav input, nav select { padding: 3px 6px; border: 1px solid var(--line); border-radius: 4px; }
main { padding: 8px 20px 40px; }
.case { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
.case > .head { padding: 8px 12px; cursor: pointer; display: flex; gap: 10px; align-items: baseline; }
.case > .head:hover { background: var(--bg); }
.case .name { font-weight: 600; }
.case .id, .dim { color: #656d76; font-size: 12px; }
.badge { font-size: 11px; font-weight: 700; text-transform: uppercase; padding: 1px 7px; border-radius: 10px; color: #fff; }
.b-passed { background: var(--pass); } .b-failed { background: var(--fail); } .b-error, .b-interrupted { background: var(--err); }
.b-skipped { background: var(--skip); } .b-flaky { background: var(--flaky); }
.timeline { max-width: 1000px; font-size: 11px; } .timeline .tl-step { stroke: #fff; stroke-width: 1; } .timeline .lane-name, .timeline .axis { fill: #57606a; }
.timeline .s-passed { fill: var(--pass); } .timeline .s-failed { fill: var(--fail); } .timeline .s-running { fill: #bf8700; }
.timeline .st-starting { fill: #54aeff; } .timeline .st-running { fill: #8ddb8c; } .timeline .st-stopping { fill: #afb8c1; }
.timeline .reset { fill: #8250df; } .timeline .console-check { fill: var(--fail); } .timeline .restore { fill: #1a7f37; }
.timeline .net-cut { fill: #ffaba8; } .timeline .net { fill: #0969da; }
.trends { display: flex; flex-wrap: wrap; gap: 12px; } .trend polyline { fill: none; stroke: #57606a; stroke-width: 1.5; }
.trend .earlier { fill: #57606a; } .trend .current { fill: #0969da; }
.spark { vertical-align: middle; } .spark .s-passed { fill: var(--pass); } .spark .s-failed { fill: var(--fail); }
.spark .s-error, .spark .s-interrupted { fill: var(--err); } .spark .s-flaky { fill: var(--flaky); } .spark .s-skipped { fill: var(--skip); }
.hist { font-size: 11px; font-weight: 700; padding: 0 6px; border-radius: 10px; border: 1px solid currentColor; }
.h-new, .h-known-expired { color: var(--fail, #c62828); } .h-still-failing { color: #8e24aa; } .h-flaky { color: var(--flaky); } .h-known { color: var(--skip); }
.body { border-top: 1px solid var(--line); padding: 10px 12px; display: none; }
.case.open .body { display: block; }
.error { background: #ffebe9; border: 1px solid #ffcecb; border-radius: 6px; padding: 8px 10px; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; max-height: 360px; overflow: auto; }
.steps ul { list-style: none; margin: 0; padding-left: 18px; }
.steps > ul { padding-left: 0; }
.step { cursor: pointer; padding: 1px 4px; border-radius: 4px; }
.step:hover { background: var(--bg); }
.step.failed { color: var(--fail); font-weight: 600; }
.step .dur { color: #656d76; font-size: 12px; margin-left: 6px; }
.step .err { display: block; color: var(--fail); font-weight: 400; white-space: pre-wrap; font-size: 12px; }
h3 { font-size: 13px; margin: 14px 0 6px; }
.machines { display: flex; flex-direction: column; gap: 10px; }
.machine .facts { font-size: 12px; color: #424a53; }
pre.log { background: #0d1117; color: #c9d1d9; font-size: 12px; max-height: 420px; overflow: auto; margin: 4px 0 0; padding: 8px; border-radius: 6px; }
pre.log .l { display: block; white-space: pre-wrap; }
pre.log .note { color: #79c0ff; }
pre.log .here { background: #3b2e00; outline: 1px solid #d29922; }
.attempts { font-size: 12px; }
.hidden { display: none; }
`;

// The viewer: plain DOM, no framework. Reads the data element, renders totals, filters and cases.
const SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('fleetlab-data').textContent);
  var state = { status: 'all', text: '', machine: '' };
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { if (k === 'text') e.textContent = attrs[k]; else if (k === 'cls') e.className = attrs[k]; else e.setAttribute(k, attrs[k]); }
    (kids || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function secs(ms) { return ms === undefined ? '' : (ms / 1000).toFixed(1) + ' s'; }
  function last(c) { return c.attempts[c.attempts.length - 1]; }
${TOPOLOGY_SCRIPT}
  function machinesOf(c) { return last(c).machines.map(function (m) { return m.profile; }); }
  var statuses = ['passed', 'failed', 'error', 'flaky', 'skipped', 'interrupted'];
  var counts = {};
  data.cases.forEach(function (c) { counts[c.status] = (counts[c.status] || 0) + 1; });

  var top = document.getElementById('top');
  top.appendChild(el('h1', { text: 'fleetlab' }));
  var totals = el('div', { cls: 'totals' });
  totals.appendChild(el('span', { text: data.cases.length + ' of ' + data.planned + ' cases' }));
  statuses.forEach(function (s) { if (counts[s]) totals.appendChild(el('span', { cls: 't-' + s, text: counts[s] + ' ' + s })); });
  top.appendChild(totals);
  top.appendChild(el('div', { cls: 'meta', text: 'run ' + data.runId + ' · commit ' + (data.commit || 'unknown').slice(0, 12) + ' · started ' + data.startedAt + (data.finished ? ' · ' + secs(data.durationMs) + ' · exit code ' + data.exitCode : ' · still running') + (data.interrupted ? ' · interrupted' : '') }));

  var nav = document.getElementById('filters');
  var buttons = {};
  ['all'].concat(statuses).forEach(function (s) {
    if (s !== 'all' && !counts[s]) return;
    var b = el('button', { 'data-status': s, text: s === 'all' ? 'all (' + data.cases.length + ')' : s + ' (' + counts[s] + ')' });
    b.onclick = function () { state.status = s; render(); };
    buttons[s] = b; nav.appendChild(b);
  });
  var search = el('input', { type: 'search', placeholder: 'filter: scenario, id, step, error…', id: 'text-filter', size: '32' });
  search.oninput = function () { state.text = search.value.toLowerCase(); render(); };
  nav.appendChild(search);
  var profiles = {};
  data.cases.forEach(function (c) { machinesOf(c).forEach(function (p) { profiles[p] = 1; }); });
  var select = el('select', { id: 'machine-filter' }, [el('option', { value: '', text: 'every machine' })]);
  Object.keys(profiles).sort().forEach(function (p) { select.appendChild(el('option', { value: p, text: p })); });
  select.onchange = function () { state.machine = select.value; render(); };
  nav.appendChild(select);

  function stepText(steps) { return steps.map(function (s) { return s.name + ' ' + (s.error ? s.error.message : '') + ' ' + stepText(s.steps); }).join(' '); }
  function matches(c) {
    if (state.status !== 'all' && c.status !== state.status) return false;
    if (state.machine && machinesOf(c).indexOf(state.machine) < 0) return false;
    if (!state.text) return true;
    var a = last(c);
    var hay = (c.id + ' ' + c.scenario + ' ' + c.variant + ' ' + (a.error ? a.error.message : '') + ' ' + stepText(a.steps)).toLowerCase();
    return hay.indexOf(state.text) >= 0;
  }

  // Console lines start with "[  SECONDS]" since the log began; a step's start maps to the first line at or after it.
  function renderLog(m) {
    var pre = el('pre', { cls: 'log' });
    if (!m.log) { pre.textContent = '(no log)'; return pre; }
    if (m.log.cut) {
      pre.appendChild(el('span', { cls: 'l note', text: '… earlier lines are in the full log' }));
      // Served (fleetlab report show), the whole log can be loaded in place; from file:// it is a link away.
      if (/^https?:$/.test(location.protocol)) {
        var more = el('button', { text: 'load the whole log' });
        more.onclick = function () {
          fetch(m.logHref).then(function (r) { return r.text(); }).then(function (text) {
            var full = renderLog({ log: { text: text, cut: false } });
            full.setAttribute('data-t0', pre.getAttribute('data-t0') || '');
            pre.replaceWith(full);
          });
        };
        pre.appendChild(more);
      }
    }
    m.log.text.split('\\n').forEach(function (line) {
      var t = /^\\[\\s*([0-9.]+)\\]/.exec(line);
      var span = el('span', { cls: 'l' + (/^\\[[^\\]]*\\]\\*---/.test(line) ? ' note' : ''), text: line });
      if (t) span.setAttribute('data-t', t[1]);
      pre.appendChild(span);
    });
    return pre;
  }
  function showConsoleAt(body, epochMs) {
    body.querySelectorAll('pre.log').forEach(function (pre) {
      var t0 = Number(pre.getAttribute('data-t0'));
      if (!t0) return;
      var at = (epochMs - t0) / 1000;
      var lines = pre.querySelectorAll('.l[data-t]');
      var hit = null;
      for (var i = 0; i < lines.length; i++) { if (Number(lines[i].getAttribute('data-t')) >= at) { hit = lines[i]; break; } }
      pre.querySelectorAll('.here').forEach(function (h) { h.classList.remove('here'); });
      if (hit) { hit.classList.add('here'); pre.scrollTop = hit.offsetTop - pre.offsetTop - 40; }
    });
  }
  function renderSteps(steps, body) {
    var ul = el('ul');
    steps.forEach(function (s) {
      var li = el('li');
      var row = el('div', { cls: 'step ' + s.status, 'data-started': String(s.startedAt) }, [
        (s.status === 'passed' ? '✓ ' : s.status === 'failed' ? '✗ ' : '… ') + s.name,
        el('span', { cls: 'dur', text: secs(s.durationMs) }),
      ]);
      if (s.error) row.appendChild(el('span', { cls: 'err', text: s.error.message.split('\\n').slice(0, 6).join('\\n') }));
      row.onclick = function (ev) { ev.stopPropagation(); showConsoleAt(body, s.startedAt); };
      li.appendChild(row);
      if (s.steps && s.steps.length) li.appendChild(renderSteps(s.steps, body));
      ul.appendChild(li);
    });
    return ul;
  }
  function failedStep(steps) {
    for (var i = 0; i < steps.length; i++) { var s = steps[i]; if (s.status === 'failed') return failedStep(s.steps) || s; }
    return null;
  }
  function renderBody(c) {
    var a = last(c);
    var body = el('div', { cls: 'body' });
    if (c.attempts.length > 1) body.appendChild(el('div', { cls: 'attempts', text: 'tries: ' + c.attempts.map(function (t) { return '#' + t.attempt + ' ' + t.status + (t.error ? ' (' + t.error.message.split('\\n')[0] + ')' : ''); }).join(' · ') }));
    if (a.skipReason) body.appendChild(el('div', { cls: 'dim', text: 'skipped: ' + a.skipReason }));
    if (a.error) {
      var msg = a.error.kind + ': ' + a.error.message + (a.error.location ? '\\n  at ' + a.error.location : '');
      if (a.error.expected !== undefined || a.error.actual !== undefined) msg += '\\n\\nexpected: ' + JSON.stringify(a.error.expected) + '\\nactual:   ' + JSON.stringify(a.error.actual);
      body.appendChild(el('div', { cls: 'error', text: msg }));
    }
    var tl = timeline(a);
    if (tl) { body.appendChild(el('h3', { text: 'Timeline' })); body.appendChild(tl); }
    var topo = topologyFigures(a);
    if (topo) { body.appendChild(el('h3', { text: 'Networks' })); body.appendChild(topo); }
    var tr = trends(c);
    if (tr) { body.appendChild(el('h3', { text: 'Trends' })); body.appendChild(tr); }
    body.appendChild(el('h3', { text: 'Steps' }));
    var steps = el('div', { cls: 'steps' });
    steps.appendChild(renderSteps(a.steps, body));
    body.appendChild(steps);
    body.appendChild(el('h3', { text: 'Machines' }));
    var fg = fleetGrids(a);
    if (fg) body.appendChild(fg);
    var ms = el('div', { cls: 'machines' });
    a.machines.forEach(function (m) {
      var f = m.facts || {};
      var facts = [m.profile, f.arch, f.firmware, f.kind === 'board' ? 'board ' + f.board : f.accel, f.start ? f.start.mode + ' start ' + secs(f.start.ms) + (f.start.reason ? ' (' + f.start.reason + ')' : '') : '', f.checkpoint ? 'checkpoint \u201c' + f.checkpoint.name + '\u201d ' + f.checkpoint.mode + ' ' + secs(f.checkpoint.ms) + (f.checkpoint.reason ? ' (' + f.checkpoint.reason + ')' : '') : ''].filter(Boolean).join(' · ');
      var box = el('div', { cls: 'machine', 'data-name': m.name }, [el('b', { text: m.name }), ' ', el('span', { cls: 'facts', text: facts }), ' ', el('a', { href: m.logHref, text: 'full console log' })]);
      var pre = renderLog(m);
      if (m.logStartedAt) pre.setAttribute('data-t0', String(m.logStartedAt));
      box.appendChild(pre);
      ms.appendChild(box);
    });
    body.appendChild(ms);
    if (a.artifacts.length) {
      body.appendChild(el('h3', { text: 'Artifacts' }));
      var ul = el('ul');
      a.artifacts.forEach(function (x) { ul.appendChild(el('li', {}, [el('a', { href: x.href, text: x.name })])); });
      body.appendChild(ul);
    }
    if (a.output.length) {
      body.appendChild(el('h3', { text: 'Output' }));
      body.appendChild(el('pre', { cls: 'log', text: a.output.join('\\n') }));
    }
    var props = a.properties || {};
    if (Object.keys(props).length) {
      body.appendChild(el('h3', { text: 'Properties' }));
      body.appendChild(el('div', { cls: 'dim', text: Object.keys(props).map(function (k) { return k + ' = ' + props[k]; }).join(' · ') }));
    }
    return body;
  }
  // A try on one time axis: a lane for its top-level steps, one per machine with its states (starting, running,
  // stopping) as bars, its resets, console checks and restore as marks, and one for its networks (partitions as bars,
  // other changes as marks). Every bar and mark has a tooltip.
  function timeline(a) {
    var t0 = Date.parse(a.startedAt), t1 = t0 + a.durationMs;
    if (!(t1 > t0)) return null;
    var ns = 'http://www.w3.org/2000/svg', W = 1000, LABEL = 150, ROW = 22;
    var lanes = [{ name: 'steps', items: a.steps.map(function (s) { return { kind: 'tl-step s-' + s.status, from: s.startedAt, to: s.startedAt + s.durationMs, title: s.name + ' (' + s.status + ', ' + secs(s.durationMs) + ')' }; }) }];
    a.machines.forEach(function (m) {
      var evs = (m.events || []).slice().sort(function (x, y) { return x.t - y.t; }), items = [];
      var states = evs.filter(function (e) { return e.kind === 'state'; });
      states.forEach(function (e, i) {
        var end = i + 1 < states.length ? states[i + 1].t : t1;
        if (e.detail !== 'stopped' && end > e.t) items.push({ kind: 'state st-' + e.detail, from: e.t, to: end, title: e.detail + ' ' + secs(end - e.t) });
      });
      evs.forEach(function (e) { if (e.kind !== 'state') items.push({ kind: 'mark ' + e.kind, from: e.t, title: (e.kind === 'reset' ? 'reset: ' : 'console check: ') + e.detail }); });
      // A warm start or a checkpoint: a mark where the machine came up, saying what it was restored from and how fast.
      var up = states.filter(function (e) { return e.detail === 'running'; })[0], f = m.facts || {};
      if (up && f.checkpoint && f.checkpoint.mode === 'restored') items.push({ kind: 'mark restore', from: up.t, title: 'restored checkpoint "' + f.checkpoint.name + '" in ' + secs(f.checkpoint.ms) + (f.checkpoint.madeBy ? ' (made by ' + f.checkpoint.madeBy + ')' : '') });
      else if (up && f.start && f.start.mode === 'warm') items.push({ kind: 'mark restore', from: up.t, title: 'restored from a snapshot in ' + secs(f.start.ms) });
      lanes.push({ name: m.role + ' (' + m.profile + ')', items: items });
    });
    // The networks: a partition as a bar until its network heals, every other change as a mark.
    if (a.network && a.network.length) {
      var net = [], open = {};
      a.network.forEach(function (e) {
        var name = (/^network (\S+):/.exec(e.event) || [])[1];
        if (/: partitioned into /.test(e.event)) { open[name] = e; return; }
        if (/: healed /.test(e.event) && open[name]) { net.push({ kind: 'net-cut', from: open[name].t, to: e.t, title: open[name].event + ' (' + secs(e.t - open[name].t) + ')' }); delete open[name]; }
        net.push({ kind: 'mark net', from: e.t, title: e.event });
      });
      Object.keys(open).forEach(function (k) { net.push({ kind: 'net-cut', from: open[k].t, to: t1, title: open[k].event + ' (to the end)' }); });
      lanes.push({ name: 'network', items: net });
    }
    var x = function (t) { return LABEL + Math.max(0, Math.min(1, (t - t0) / (t1 - t0))) * (W - LABEL); };
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', 'timeline'); svg.setAttribute('viewBox', '0 0 ' + W + ' ' + (lanes.length * ROW + 4)); svg.setAttribute('width', '100%');
    function add(tag, attrs, parent) { var n = document.createElementNS(ns, tag); for (var k in attrs) n.setAttribute(k, attrs[k]); (parent || svg).appendChild(n); return n; }
    lanes.forEach(function (lane, i) {
      var g = add('g', { class: 'lane', 'data-lane': lane.name });
      var label = add('text', { x: '4', y: String(i * ROW + 15), class: 'lane-name' }, g); label.textContent = lane.name;
      lane.items.forEach(function (it) {
        var n = it.to === undefined
          ? add('rect', { x: String(x(it.from) - 1.5), y: String(i * ROW + 1), width: '3', height: String(ROW - 4), class: it.kind }, g)
          : add('rect', { x: String(x(it.from)), y: String(i * ROW + 4), width: String(Math.max(1, x(it.to) - x(it.from))), height: String(ROW - 10), class: it.kind }, g);
        var t = document.createElementNS(ns, 'title'); t.textContent = it.title; n.appendChild(t);
      });
    });
    var axis = add('text', { x: String(W - 4), y: String(lanes.length * ROW + 2), class: 'axis', 'text-anchor': 'end' }); axis.textContent = secs(a.durationMs);
    return svg;
  }
  // Each numeric property the case set (ctx.property) over its earlier runs and this one, from the run history: a line
  // per property with a dot per run, this run's dot marked; tooltips name the run and the value.
  function trends(c) {
    if (!c.trend || !c.trend.length) return null;
    var now = last(c).properties || {};
    var points = c.trend.map(function (p) { return { runId: p.runId, props: p.properties || {} }; }).concat([{ runId: data.runId + ' (this run)', props: now, current: true }]);
    var names = Object.keys(now).filter(function (k) { return isFinite(Number(now[k])); });
    if (!names.length) return null;
    var ns = 'http://www.w3.org/2000/svg', W = 240, H = 60;
    var box = el('div', { cls: 'trends' });
    names.forEach(function (name) {
      var pts = points.map(function (p, i) { return { i: i, v: Number(p.props[name]), p: p }; }).filter(function (q) { return q.p.props[name] !== undefined && isFinite(q.v); });
      var vs = pts.map(function (q) { return q.v; }), lo = Math.min.apply(null, vs), hi = Math.max.apply(null, vs);
      var y = function (v) { return hi === lo ? H / 2 : H - 6 - ((v - lo) / (hi - lo)) * (H - 12); };
      var x = function (i) { return 6 + (points.length === 1 ? 0 : (i / (points.length - 1)) * (W - 12)); };
      var svg = document.createElementNS(ns, 'svg');
      svg.setAttribute('class', 'trend'); svg.setAttribute('data-property', name); svg.setAttribute('width', String(W)); svg.setAttribute('height', String(H));
      var line = document.createElementNS(ns, 'polyline');
      line.setAttribute('points', pts.map(function (q) { return x(q.i) + ',' + y(q.v); }).join(' ')); svg.appendChild(line);
      pts.forEach(function (q) {
        var dot = document.createElementNS(ns, 'circle');
        dot.setAttribute('cx', String(x(q.i))); dot.setAttribute('cy', String(y(q.v))); dot.setAttribute('r', q.p.current ? '4' : '2.5');
        dot.setAttribute('class', q.p.current ? 'current' : 'earlier');
        var t = document.createElementNS(ns, 'title'); t.textContent = q.p.runId + ': ' + name + ' = ' + q.p.props[name]; dot.appendChild(t);
        svg.appendChild(dot);
      });
      box.appendChild(el('div', { cls: 'trend-box' }, [el('div', { cls: 'dim', text: name + ': ' + now[name] + ' (range ' + lo + '–' + hi + ')' }), svg]));
    });
    return box;
  }
  // The case's status and duration in earlier runs (from the run history) and in this one: a bar each, its height the
  // duration, its colour the status; a bar's tooltip names the run.
  function sparkline(c) {
    if (!c.trend || !c.trend.length) return null;
    var points = c.trend.concat([{ runId: data.runId + ' (this run)', status: c.status, durationMs: c.durationMs }]);
    var max = Math.max.apply(null, points.map(function (p) { return p.durationMs; })) || 1;
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', 'spark'); svg.setAttribute('width', String(points.length * 6)); svg.setAttribute('height', '16');
    points.forEach(function (p, i) {
      var h = Math.max(2, Math.round((p.durationMs / max) * 16));
      var r = document.createElementNS(ns, 'rect');
      r.setAttribute('x', String(i * 6)); r.setAttribute('y', String(16 - h)); r.setAttribute('width', '4'); r.setAttribute('height', String(h));
      r.setAttribute('class', 's-' + p.status);
      var t = document.createElementNS(ns, 'title'); t.textContent = p.runId + ': ' + p.status + ', ' + secs(p.durationMs); r.appendChild(t);
      svg.appendChild(r);
    });
    return svg;
  }
  var list = document.getElementById('cases');
  var nodes = data.cases.map(function (c) {
    var div = el('div', { cls: 'case', 'data-status': c.status, 'data-id': c.id });
    var head = el('div', { cls: 'head' }, [
      el('span', { cls: 'badge b-' + c.status, text: c.status }),
      c.history ? el('span', { cls: 'hist h-' + c.history.class, title: c.history.why + (c.history.bug ? ' (' + c.history.bug + ')' : ''), text: c.history.class }) : null,
      sparkline(c),
      el('span', { cls: 'name', text: c.scenario + ' [' + c.variant + ']' + (c.repeat ? ' (repeat ' + c.repeat.index + '/' + c.repeat.of + ')' : '') }),
      el('span', { cls: 'id', text: c.id }),
      el('span', { cls: 'dim', text: secs(c.durationMs) + ' · ' + machinesOf(c).join(', ') }),
    ]);
    var body = null;
    function open() {
      if (!body) {
        body = renderBody(c); div.appendChild(body);
        var f = failedStep(last(c).steps);
        if (f) setTimeout(function () { showConsoleAt(body, f.startedAt + f.durationMs); }, 0);
      }
      div.classList.toggle('open');
    }
    head.onclick = open;
    div.appendChild(head);
    list.appendChild(div);
    if (c.status === 'failed' || c.status === 'error') open();
    return { c: c, div: div };
  });
  function render() {
    Object.keys(buttons).forEach(function (s) { buttons[s].classList.toggle('on', s === state.status); });
    nodes.forEach(function (n) { n.div.classList.toggle('hidden', !matches(n.c)); });
  }
  render();
})();
`;
