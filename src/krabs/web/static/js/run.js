// One run, live: its summary, a waterfall timeline of tool calls and spans fed by the run's SSE
// stream (resumed with Last-Event-ID after any drop: rows are keyed by seq, never duplicated),
// cancel, approve or reject a waiting call, and a dry-run replay.
import { call, newKey } from './api.js';
import { h, status, failed, time, json, diffTable, planTable } from './ui.js';
import { subscribe, EVENT_TYPES, TERMINAL, ms, usd } from './live.js';

const id = document.getElementById('run').dataset.id;
const tbody = document.querySelector('#timeline tbody');
const rows = new Map(); // seq -> {event, row, bar}
let run = null;
let stream = null;
let refreshTimer = null;
const OWN = new Set(['run.get', 'approval.list', 'action.get', 'run.replay']);

// -- summary and buttons --------------------------------------------------------------------------

function summary() {
  const s = run.stats || {};
  const facts = [
    ['Status', h('span', { class: `badge ${run.status}`, id: 'run-status' }, run.status.replaceAll('_', ' '))],
    ['Name', run.name], ['Agent', run.agent], ['Started', time(run.created_at)],
    ['Ended', run.ended_at ? time(run.ended_at) : '—'], ['Calls', String(s.calls ?? 0)], ['Errors', String(s.errors ?? 0)],
    ['Writes', String(s.writes ?? 0)], ['p50', ms(s.latency_p50_ms)], ['p95', ms(s.latency_p95_ms)],
    ['Tokens', `${s.input_tokens ?? 0} in / ${s.output_tokens ?? 0} out`], ['Cost', usd(s.cost_usd)],
  ];
  document.getElementById('summary').replaceChildren(h('dl', { class: 'stats' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { dataset: { k: k.toLowerCase() } }, v)))));
  document.querySelector('h1').firstChild.textContent = `Run ${run.name && run.name !== 'default' ? run.name : ''} `;
  const buttons = [h('button', { type: 'button', onclick: replay }, 'Dry-run replay')];
  if ((s.writes ?? 0) > 0) buttons.push(h('button', { type: 'button', class: 'danger', onclick: undoPlan }, 'Undo this run…'));
  if (!TERMINAL.has(run.status)) buttons.unshift(h('button', { type: 'button', class: 'danger', onclick: cancel }, 'Cancel run'));
  buttons.push(h('a', { href: `/audit?run=${encodeURIComponent(id)}` }, 'Writes in the audit log'));
  document.getElementById('run-buttons').replaceChildren(...buttons);
}

async function load() {
  run = await call('run.get', { id });
  summary();
  await approvals();
}

function later() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => load().catch(failed), 300);
}

async function cancel(event) {
  const box = document.getElementById('run-confirm');
  const confirm = h('button', { type: 'button', class: 'danger', onclick: async () => {
    try {
      await call('run.cancel', { id, reason: 'cancelled from the dashboard' }, { idempotencyKey: newKey() });
      status('Run cancelled');
      box.replaceChildren();
      await load();
    } catch (e) { failed(e); }
  } }, 'Yes, cancel this run');
  box.replaceChildren(h('span', {}, 'The agent will get run_cancelled on its next call. '), confirm,
    h('button', { type: 'button', onclick: () => box.replaceChildren() }, 'Keep it running'));
  confirm.focus();
  event?.preventDefault();
}

// -- approvals ------------------------------------------------------------------------------------

async function approvals() {
  const card = document.getElementById('approvals-card');
  const list = await call('approval.list', { run_id: id, status: 'pending', limit: 50 });
  card.hidden = list.data.length === 0;
  document.getElementById('approvals').replaceChildren(...list.data.map((a) => h('li', { class: 'approval', dataset: { id: a.id } },
    h('code', {}, a.op), ` asked by ${a.agent_id} `, time(a.created_at), h('div', { class: 'muted' }, a.reason),
    h('details', {}, h('summary', {}, 'Arguments'), json(a.args)),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'primary', onclick: () => decide(a, 'approve') }, `Approve ${a.op}`),
      h('button', { type: 'button', class: 'danger', onclick: () => decide(a, 'reject') }, `Reject ${a.op}`)))));
}

async function decide(approval, decision) {
  try {
    await call('approval.decide', { id: approval.id, decision, run_id: id }, { idempotencyKey: newKey() });
    status(decision === 'approve' ? `Approved ${approval.op}: the agent's retry will run it` : `Rejected ${approval.op}`);
    await load();
  } catch (e) { failed(e); }
}

// -- timeline -------------------------------------------------------------------------------------

function describe(type, e) {
  if (type === 'tool_call') {
    const bad = Boolean(e.error);
    return {
      label: h('code', {}, e.op), dry: e.dry_run ? h('span', { class: 'badge' }, 'dry run') : '',
      mark: h('span', { class: bad ? 'mark-bad' : 'mark-ok', 'aria-label': bad ? `failed: ${e.error.code}` : 'succeeded' }, bad ? `✕ ${e.error.code}` : '✓'),
      latency: e.latency_ms, bad,
    };
  }
  if (type === 'span') {
    return { label: [h('span', { class: 'badge' }, e.span_kind || 'span'), ' ', e.node_name, e.model ? ` · ${e.model}` : ''],
      mark: '', latency: e.latency_ms, bad: false };
  }
  return { label: h('em', {}, type), mark: '', latency: null, bad: type === 'run.failed' };
}

function details(type, e) {
  const parts = [];
  if (e.args) parts.push(h('h3', {}, 'Arguments'), json(e.args));
  if (e.error) parts.push(h('h3', {}, 'Error'), json(e.error));
  if (e.result) parts.push(h('h3', {}, 'Result'), json(e.result));
  if (type === 'span') parts.push(json(e));
  if (!parts.length) parts.push(json(e));
  return parts;
}

async function expand(entry, button) {
  const open = button.getAttribute('aria-expanded') === 'true';
  button.setAttribute('aria-expanded', String(!open));
  entry.detail.hidden = open;
  if (open || entry.loaded) return;
  entry.loaded = true;
  const panel = entry.detail.querySelector('.panel');
  panel.replaceChildren(...details(entry.type, entry.event));
  if (entry.event.action_id) {
    try {
      const action = await call('action.get', { id: entry.event.action_id });
      panel.append(h('h3', {}, 'Diff'), diffTable(action.changes));
    } catch (e) { panel.append(h('p', { class: 'error' }, e.message)); }
  }
}

function layout() {
  const start = Date.parse(run?.created_at || [...rows.values()][0]?.event.ts);
  let end = start + 1;
  for (const { event } of rows.values()) end = Math.max(end, Date.parse(event.ts) + (event.latency_ms || 0));
  const span = end - start;
  for (const { event, bar } of rows.values()) {
    const at = Date.parse(event.ts) - start;
    bar.style.left = `${Math.max(0, (at / span) * 100)}%`;
    bar.style.width = `${Math.max(0.4, ((event.latency_ms || 0) / span) * 100)}%`;
  }
}

function add(type, event) {
  if (rows.has(event.seq)) return; // already shown (a resumed stream never repeats, but be sure)
  const d = describe(type, event);
  const bar = h('div', { class: `bar${d.bad ? ' error' : ''}` });
  const detail = h('tr', { class: 'details', hidden: true, id: `ev-${event.seq}` }, h('td', { colspan: 7 }, h('div', { class: 'panel' })));
  const entry = { type, event, bar, detail, loaded: false };
  const button = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': `ev-${event.seq}`,
    onclick: () => expand(entry, button) }, 'Details');
  const row = h('tr', { dataset: { seq: event.seq, type }, class: d.bad ? 'failed' : '' },
    h('td', {}, String(event.seq)), h('td', {}, time(event.ts)), h('td', {}, d.label, ' ', d.dry),
    h('td', {}, d.mark), h('td', { class: 'num' }, d.latency === null || d.latency === undefined ? '' : ms(d.latency)),
    h('td', {}, h('div', { class: 'waterfall', 'aria-hidden': 'true' }, bar)), h('td', {}, button));
  entry.row = row;
  const next = [...rows.keys()].filter((s) => s > event.seq).sort((a, b) => a - b)[0];
  if (next === undefined) tbody.append(row, detail);
  else tbody.insertBefore(row, rows.get(next).row).after(detail);
  rows.set(event.seq, entry);
  layout();
}

function progress(event) {
  const box = document.getElementById('progress');
  const total = event.rows_total ?? 0;
  const label = total ? `${event.rows_done} of ${total} rows` : `${event.rows_done} rows`;
  box.hidden = false;
  box.replaceChildren(h('label', { for: 'progress-bar' }, `${event.op}: ${label}`),
    h('progress', { id: 'progress-bar', max: total || undefined, value: total ? event.rows_done : undefined }, label));
}

function onEvent(type, event) {
  if (type === 'import.progress') { progress(event); return; } // live only: no row, no seq of its own
  add(type, event);
  // A finished run's stream ends after its history; do not let EventSource reopen it forever.
  if (run && TERMINAL.has(run.status) && event.seq >= run.last_seq) stream?.close();
  if (type === 'tool_call' && run) {
    run.stats.calls += 1;
    if (event.error) run.stats.errors += 1;
    if (event.action_id) run.stats.writes += 1;
    summary();
  }
  // Exact stats are re-read, except after this page's own reads (which would feed themselves).
  if (type !== 'tool_call' || !OWN.has(event.op)) later();
  if (['run.completed', 'run.failed', 'run.cancelled', 'run.expired'].includes(type)) {
    stream?.close();
    later();
  }
}

// -- replay ---------------------------------------------------------------------------------------

async function replay() {
  const card = document.getElementById('replay-card');
  const box = document.getElementById('replay');
  card.hidden = false;
  box.replaceChildren('Replaying every call as a dry run…');
  try {
    const result = await call('run.replay', { id, limit: 1000 });
    const s = result.summary;
    box.replaceChildren(
      h('p', {}, `${s.calls} call(s): ${s.same} same, ${s.differs} differ, ${s.would_fail} would fail, ${s.skipped} skipped. Nothing was changed.`),
      h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['#', 'Call', 'Today', 'Differences'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, result.items.map((item) => h('tr', { dataset: { seq: item.seq } },
          h('td', {}, String(item.seq)), h('td', {}, h('code', {}, item.op)),
          h('td', {}, h('span', { class: `badge ${item.status === 'same' ? 'ok' : item.status === 'skipped' ? '' : 'bad'}` }, item.status.replace('_', ' '))),
          h('td', {}, item.diff?.length ? h('details', {}, h('summary', {}, `${item.diff_count ?? item.diff.length} difference(s)`), json(item.diff)) : ''))))));
    for (const item of result.items) {
      const entry = rows.get(item.seq);
      entry?.row.children[2].append(' ', h('span', { class: 'badge', title: 'dry-run replay today' }, `replay: ${item.status.replace('_', ' ')}`));
    }
    status('Dry-run replay done');
  } catch (e) { box.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message)); }
}

// -- undo the run's writes ------------------------------------------------------------------------

async function undoPlan() {
  const card = document.getElementById('undo-card');
  const box = document.getElementById('undo');
  card.hidden = false;
  box.replaceChildren('Asking for the dry-run plan…');
  try {
    const plan = await call('run.undo', { id }, { dryRun: true });
    const result = plan.result;
    const counts = Object.entries(result.counts).map(([k, v]) => `${v} ${k.replace('_', ' ')}`).join(', ');
    const confirm = h('button', { type: 'button', class: 'danger', onclick: async () => {
      try {
        const done = await call('run.undo', { id, reason: 'undone from the dashboard' }, { idempotencyKey: newKey() });
        box.replaceChildren(h('p', { class: 'ok' }, `Undone: ${done.restored.length} row(s) restored (action ${done.id}).`));
        status(`Run undone: ${done.restored.length} row(s) restored`);
      } catch (e) { box.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`)); }
    } }, 'Confirm undo of this run');
    box.replaceChildren(
      h('h3', {}, 'Undo plan (dry run: nothing changed yet)'),
      h('p', {}, `Writes: ${counts || 'none'}; ${result.restored.length} row(s) would be restored.`),
      planTable(plan.diff),
      h('div', { class: 'buttons' }, confirm, h('button', { type: 'button', onclick: () => { card.hidden = true; } }, 'Cancel')));
    confirm.focus();
  } catch (e) { box.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`)); }
}

// -- start ----------------------------------------------------------------------------------------

load().then(() => {
  stream = subscribe(`/v1/runs/${encodeURIComponent(id)}/stream`, [...EVENT_TYPES, 'import.progress'], onEvent);
}).catch((e) => {
  document.getElementById('summary').replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
  failed(e);
});
