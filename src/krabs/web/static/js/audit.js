// Audit: the action log with filters, each action's before/after diff, undo with its dry-run plan
// first, and the log's verification status.
import { call, schema, newKey, has } from './api.js';
import { canVerify, verifyInclusion } from './merkle.js';
import { h, status, failed, time, json, diffTable, planTable, formArgs, link } from './ui.js';

const tbody = document.querySelector('#actions tbody');
const more = document.getElementById('more');
const form = document.getElementById('filters');
let filters = {};
let cursor = null;
let ops = {};

function undoable(action) {
  const op = ops[action.op];
  return Boolean(op && op.destructive && action.op !== 'action.undo' && !action.undone_by
    && action.undoable_until && new Date(action.undoable_until) > new Date());
}

function stateOf(action) {
  if (action.undone_by) return h('span', { class: 'badge warn' }, 'undone');
  if (action.undo_of) return h('span', { class: 'badge' }, `undo of ${action.undo_of}`);
  return ops[action.op]?.destructive ? h('span', { class: 'badge' }, 'destructive') : '';
}

function row(action) {
  const details = h('tr', { class: 'details', hidden: true, id: `d-${action.id}` },
    h('td', { colspan: 7 }, h('div', { class: 'panel' }, 'Loading…')));
  const toggle = h('button', {
    type: 'button', 'aria-expanded': 'false', 'aria-controls': `d-${action.id}`,
    onclick: () => expand(action, toggle, details),
  }, 'Details');
  const buttons = [toggle];
  if (undoable(action)) {
    buttons.push(h('button', { type: 'button', class: 'danger', onclick: () => plan(action, details, toggle) }, 'Undo…'));
  }
  const line = h('tr', { dataset: { id: action.id, op: action.op } },
    h('td', {}, time(action.created_at)),
    h('td', {}, h('code', {}, action.op)),
    h('td', {}, action.actor?.agent || '—'),
    h('td', {}, action.targets.slice(0, 3).map((t) => h('code', { class: 'id' }, t))),
    h('td', {}, action.run_id ? link(`/runs/${action.run_id}`, action.run_id) : '—'),
    h('td', {}, stateOf(action)),
    h('td', { class: 'actions' }, buttons));
  return [line, details];
}

async function expand(action, toggle, details, force = false) {
  const open = toggle.getAttribute('aria-expanded') === 'true' && !force;
  toggle.setAttribute('aria-expanded', String(!open));
  details.hidden = open;
  if (open) return;
  const panel = details.querySelector('.panel');
  try {
    const full = await call('action.get', { id: action.id });
    panel.replaceChildren(
      h('h3', {}, 'Changes'), diffTable(full.changes),
      h('details', {}, h('summary', {}, 'Arguments'), json(full.args)),
      h('details', {}, h('summary', {}, 'Result'), json(full.result)),
      h('p', { class: 'muted' }, `seq ${full.seq} · hash `, h('code', {}, full.hash)));
    if (await has('audit.proof')) panel.append(proofButton(full));
  } catch (e) { panel.replaceChildren(h('p', { class: 'error' }, e.message)); }
}

function proofButton(action) {
  const out = h('p', { class: 'proof', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', onclick: async () => {
    out.textContent = 'Asking for the inclusion proof…';
    try {
      const answer = await call('audit.proof', { action: action.id });
      if (!canVerify()) {
        out.textContent = `The server proves record ${answer.leaf_index + 1} of ${answer.tree_size}; this page is not a secure context, so it cannot recompute the hashes.`;
        return;
      }
      out.textContent = `✓ ${await verifyInclusion(answer, action.record)}`;
      out.className = 'proof ok';
    } catch (e) {
      out.textContent = `✕ ${e.message}`;
      out.className = 'proof error';
    }
  } }, 'Verify in the signed log');
  return h('div', {}, button, out);
}

async function plan(action, details, toggle) {
  details.hidden = false;
  toggle.setAttribute('aria-expanded', 'true');
  const panel = details.querySelector('.panel');
  panel.replaceChildren('Asking for the dry-run plan…');
  let dry;
  try {
    dry = await call('action.undo', { action_id: action.id }, { dryRun: true });
  } catch (e) {
    panel.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`));
    return;
  }
  const result = dry.result || {};
  const confirm = h('button', { type: 'button', class: 'danger', onclick: () => apply(action, panel) }, 'Confirm undo');
  const cancel = h('button', { type: 'button', onclick: () => { details.hidden = true; toggle.setAttribute('aria-expanded', 'false'); } }, 'Cancel');
  panel.replaceChildren(
    h('h3', { class: 'plan' }, 'Undo plan (dry run: nothing changed yet)'),
    h('p', {}, `Restores ${(result.restored || []).length} row(s)`,
      (result.conflicts || []).length ? `; ${result.conflicts.length} conflict(s)` : ''),
    planTable(dry.diff), h('div', { class: 'buttons' }, confirm, cancel));
  confirm.focus();
}

async function apply(action, panel) {
  try {
    const done = await call('action.undo', { action_id: action.id }, { idempotencyKey: newKey() });
    await load(true);
    status(`Undone: restored ${done.restored.length} row(s) of ${action.op}`);
  } catch (e) {
    panel.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`));
  }
}

async function load(reset) {
  if (reset) { cursor = null; tbody.replaceChildren(); }
  try {
    const page = await call('action.list', { ...filters, limit: 50, ...(cursor ? { starting_after: cursor } : {}) });
    for (const action of page.data) tbody.append(...row(action));
    cursor = page.data.length ? page.data[page.data.length - 1].id : cursor;
    more.hidden = !page.has_more;
    if (!tbody.children.length) tbody.append(h('tr', {}, h('td', { colspan: 7 }, 'No action matches.')));
    status(`${tbody.querySelectorAll('tr[data-id]').length} action(s) shown`);
  } catch (e) { failed(e); }
}

async function verification() {
  const box = document.getElementById('verification');
  const contract = await schema();
  // The signed log (audit.checkpoint, audit.verify) is optional: show what the server offers.
  const readers = ['audit.checkpoint'].filter((op) => op in contract.operations && !contract.operations[op].mutates);
  const parts = [];
  for (const op of readers) {
    try {
      const found = await call(op, {});
      const head = (await call('action.list', { limit: 1 })).data[0];
      const covered = head ? `covers ${found.tree_size} of ${head.seq} records` : '';
      parts.push(h('div', { class: 'verify' }, h('p', { class: 'ok' }, `Latest signed checkpoint ${covered}`), checkpointSummary(found)));
    } catch (e) {
      parts.push(h('p', { class: e.code === 'not_found' ? 'muted' : 'error' }, `No signed checkpoint yet (${e.message})`));
    }
  }
  if (!parts.length) {
    const head = await call('action.list', { limit: 1 });
    const last = head.data[0];
    parts.push(h('p', {}, 'This server publishes no signed checkpoints. Hash chain head: ',
      last ? h('code', {}, `seq ${last.seq} ${last.hash.slice(0, 16)}…`) : 'empty log'));
  }
  box.replaceChildren(...parts);
}

function checkpointSummary(found) {
  const fields = ['tree_size', 'root_hash', 'reason', 'created_at'];
  const shown = fields.filter((f) => f in found);
  const list = h('dl', { class: 'kv' }, shown.map((f) => [h('dt', {}, f), h('dd', {}, String(found[f]))]));
  return [list, h('details', {}, h('summary', {}, 'Full answer'), json(found))];
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  filters = formArgs(form);
  if (filters.since) filters.since = new Date(filters.since).toISOString();
  load(true);
});
more.addEventListener('click', () => load(false));

const params = new URLSearchParams(location.search);
for (const key of ['op', 'target', 'run']) {
  if (params.get(key)) { form.elements[key].value = params.get(key); filters[key] = params.get(key); }
}
schema().then((contract) => {
  ops = contract.operations;
  document.getElementById('op-names').replaceChildren(...Object.keys(ops).filter((n) => ops[n].mutates).map((n) => h('option', { value: n })));
  load(true);
  verification().catch(failed);
}).catch(failed);
