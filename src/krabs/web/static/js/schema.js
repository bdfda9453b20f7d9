// Schema: every operation with its description, arguments and errors, and a "try it" form that
// calls it (dry-run on by default).
import { call, schema, newKey } from './api.js';
import { h, failed, json, status } from './ui.js';

const box = document.getElementById('ops');
const find = document.getElementById('find');

function typeOf(prop) {
  if (!prop) return '';
  if (prop.enum) return prop.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (prop.anyOf) return prop.anyOf.map(typeOf).filter(Boolean).join(' | ');
  if (prop.type === 'array') return `array of ${typeOf(prop.items) || 'any'}`;
  if (prop.$ref) return prop.$ref.split('/').pop();
  return prop.type || 'object';
}

function argsTable(input) {
  const props = input.properties || {};
  const required = new Set(input.required || []);
  const names = Object.keys(props);
  if (!names.length) return h('p', { class: 'muted' }, 'No arguments.');
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ['Argument', 'Type', 'Required', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, names.map((n) => h('tr', {},
      h('th', { scope: 'row' }, h('code', {}, n)), h('td', {}, typeOf(props[n])), h('td', {}, required.has(n) ? 'yes' : ''),
      h('td', {}, props[n].description || '')))));
}

function errorsTable(errors) {
  const rows = errors.map((e) => (typeof e === 'string' ? { code: e } : e));
  return h('table', { class: 'grid errors' },
    h('thead', {}, h('tr', {}, ['Code', 'HTTP', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((e) => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, e.code)),
      h('td', {}, e.status ?? ''), h('td', {}, e.description || '')))));
}

function tryIt(name, op) {
  const id = `try-${name.replace(/\W/g, '-')}`;
  const example = op.examples?.[0]?.args ?? op.examples?.[0] ?? {};
  const text = h('textarea', { id: `${id}-args`, name: 'args', rows: 6, spellcheck: 'false' }, JSON.stringify(example, null, 2));
  const dry = h('input', { type: 'checkbox', id: `${id}-dry`, name: 'dry_run', checked: true });
  const out = h('div', { class: 'result', 'aria-live': 'polite' });
  const form = h('form', { class: 'try', id, 'aria-label': `Try ${name}` },
    h('label', { for: `${id}-args` }, 'Arguments (JSON)'), text,
    h('label', { class: 'inline', for: `${id}-dry` }, dry, ' Dry run (show the plan, change nothing)'),
    h('button', { type: 'submit' }, `Call ${name}`), out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let args;
    try { args = JSON.parse(text.value || '{}'); } catch (e) {
      out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Arguments are not JSON: ${e.message}`));
      return;
    }
    try {
      const answer = await call(name, args, { dryRun: dry.checked, idempotencyKey: op.mutates && !dry.checked ? newKey() : undefined });
      out.replaceChildren(h('p', { class: 'ok' }, dry.checked ? 'Dry run: nothing was changed.' : 'Done.'), json(answer));
    } catch (e) {
      out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${e.status} ${e.code}`), json(e.error));
    }
  });
  return form;
}

function opCard(name, op) {
  const flags = [op.mutates ? 'writes' : 'reads', op.destructive ? 'destructive' : null, `scope ${op.scope}`, `since ${op.added_in}`].filter(Boolean);
  return h('details', { class: 'op card', id: `op-${name}`, dataset: { name } },
    h('summary', {}, h('code', {}, name), ' — ', op.summary, ' ', flags.map((f) => h('span', { class: 'badge' }, f))),
    h('div', { class: 'desc' }, (op.description || '').split('\n\n').map((p) => h('p', {}, p))),
    h('h3', {}, 'Arguments'), argsTable(op.input || {}),
    h('h3', {}, 'Errors'), errorsTable(op.errors || []),
    h('h3', {}, 'Try it'), tryIt(name, op));
}

schema().then((contract) => {
  document.getElementById('version').textContent = `Contract ${contract.version}: ${Object.keys(contract.operations).length} operations.`;
  const names = Object.keys(contract.operations).sort();
  box.replaceChildren(...names.map((n) => opCard(n, contract.operations[n])));
  if (location.hash) document.getElementById(location.hash.slice(1))?.setAttribute('open', '');
  status(`${names.length} operations`);
}).catch(failed);

find.addEventListener('input', () => {
  const q = find.elements.q.value.trim().toLowerCase();
  for (const card of box.children) card.hidden = Boolean(q) && !card.dataset.name.includes(q) && !card.textContent.toLowerCase().includes(q);
});
find.addEventListener('submit', (e) => e.preventDefault());
