// Runs: the account's runs, kept live by the firehose (GET /v1/runs/stream). Each event updates
// its row at once; exact stats (p95, cost) are re-read with run.get, at most once a second a run.
import { call } from './api.js';
import { h, status, failed, time, link } from './ui.js';
import { subscribe, EVENT_TYPES, ms, usd } from './live.js';

const tbody = document.querySelector('#runs tbody');
const runs = new Map();
const pending = new Map();
// The dashboard's own reads are calls too; re-reading a run for them would feed itself forever.
const OWN = new Set(['run.get', 'run.list']);

function cells(run) {
  const s = run.stats || {};
  return [
    h('td', {}, link(`/runs/${run.id}`, run.name && run.name !== 'default' ? run.name : run.id), h('div', { class: 'muted id' }, run.id)),
    h('td', {}, h('span', { class: `badge ${run.status}` }, run.status.replaceAll('_', ' '))),
    h('td', {}, run.agent),
    h('td', { class: 'num', dataset: { k: 'calls' } }, String(s.calls ?? 0)),
    h('td', { class: 'num', dataset: { k: 'errors' } }, String(s.errors ?? 0)),
    h('td', { class: 'num' }, ms(s.latency_p95_ms)),
    h('td', { class: 'num' }, usd(s.cost_usd)),
    h('td', {}, run.last_call_at ? time(run.last_call_at) : '—'),
  ];
}

function put(run) {
  runs.set(run.id, run);
  let row = tbody.querySelector(`tr[data-id="${run.id}"]`);
  if (!row) {
    row = h('tr', { dataset: { id: run.id } });
    tbody.prepend(row);
  }
  row.dataset.status = run.status;
  row.replaceChildren(...cells(run));
}

function refresh(id) {
  if (pending.has(id)) return;
  pending.set(id, setTimeout(async () => {
    pending.delete(id);
    try { put(await call('run.get', { id })); } catch (e) { failed(e); }
  }, 1000));
}

function onEvent(type, event) {
  const run = runs.get(event.run_id);
  if (!run) { refresh(event.run_id); return; }
  if (type === 'tool_call') {
    run.stats.calls += 1;
    if (event.error) run.stats.errors += 1;
    run.last_call_at = event.ts;
    put(run);
    if (!OWN.has(event.op)) refresh(run.id);
  } else {
    refresh(run.id);
  }
}

async function main() {
  const page = await call('run.list', { limit: 100 });
  for (const run of [...page.data].reverse()) put(run);
  status(`${runs.size} run(s)`);
  subscribe('/v1/runs/stream', EVENT_TYPES, onEvent);
}

main().catch(failed);
