// Runs: the account's runs, kept live by the firehose (GET /v1/runs/stream). Each event updates
// its row at once; exact stats (p95, cost) are re-read with run.get, at most once a second a run.
import { call } from './api.js';
import { h, status, failed, time, link, formArgs } from './ui.js';
import { subscribe, EVENT_TYPES, ms, usd } from './live.js';

const tbody = document.querySelector('#runs tbody');
const form = document.getElementById('filters');
let filters = {};
let live = null;
const runs = new Map();
const pending = new Map();
// The dashboard's own reads are calls too; re-reading a run for them would feed itself forever.
const OWN = new Set(['run.get', 'run.list']);

function cells(run) {
  const s = run.stats || {};
  return [
    h('td', {}, link(`/runs/${run.id}`, run.default ? `default (${run.created.slice(0, 10)})` : run.name || run.id), h('div', { class: 'muted id' }, run.id)),
    h('td', {}, h('span', { class: `badge ${run.status}` }, run.status.replaceAll('_', ' '))),
    h('td', {}, run.agent),
    h('td', { class: 'num', dataset: { k: 'calls' } }, String(s.calls ?? 0)),
    h('td', { class: 'num', dataset: { k: 'errors' } }, String(s.errors ?? 0)),
    h('td', { class: 'num' }, ms(s.latency_p95_ms)),
    h('td', { class: 'num' }, usd(s.cost_usd)),
    h('td', {}, run.last_call_at ? time(run.last_call_at) : '—'),
  ];
}

const wanted = (run) => Object.entries(filters).every(([k, v]) => run[k] === v);

function put(run) {
  if (!wanted(run)) {
    runs.delete(run.id);
    tbody.querySelector(`tr[data-id="${run.id}"]`)?.remove();
    return;
  }
  runs.set(run.id, run);
  let row = tbody.querySelector(`tr[data-id="${run.id}"]`);
  if (!row) {
    row = h('tr', { dataset: { id: run.id } });
    tbody.prepend(row);
  }
  row.dataset.status = run.status;
  row.replaceChildren(...cells(run));
  status(`${runs.size} run(s)`);
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
  if (!run) {
    if (!OWN.has(event.op)) refresh(event.run_id);
    return;
  }
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
  runs.clear();
  tbody.replaceChildren();
  const page = await call('run.list', { limit: 100, ...filters });
  for (const run of [...page.data].reverse()) put(run);
  status(`${runs.size} run(s)`);
  live?.source.close();
  const query = filters.agent ? `?agent=${encodeURIComponent(filters.agent)}` : '';
  live = subscribe(`/v1/runs/stream${query}`, EVENT_TYPES, onEvent);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  filters = formArgs(form);
  history.replaceState(null, '', '?' + new URLSearchParams(filters));
  main().catch(failed);
});
for (const [key, value] of new URLSearchParams(location.search)) {
  if (form.elements[key]) { form.elements[key].value = value; filters[key] = value; }
}
main().catch(failed);
