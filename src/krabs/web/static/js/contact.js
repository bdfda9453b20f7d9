// One contact: profile, identities, tags, the timeline of interactions, deals, tasks and notes.
import { call } from './api.js';
import { h, failed, time, money, when } from './ui.js';

const id = document.getElementById('contact').dataset.id;
const put = (elementId, ...nodes) => document.getElementById(elementId).replaceChildren(...nodes);
const empty = (text) => h('li', { class: 'muted' }, text);

async function all(op, args) {
  const rows = [];
  let after = null;
  for (let i = 0; i < 5; i += 1) {
    const page = await call(op, { ...args, limit: 100, ...(after ? { starting_after: after } : {}) });
    rows.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.data[page.data.length - 1].id;
  }
  return rows;
}

async function main() {
  const contact = await call('contact.get', { id });
  document.querySelector('h1').textContent = contact.display_name || contact.id;
  document.title = `${contact.display_name || contact.id} · krabs`;
  const fields = ['id', 'given_name', 'family_name', 'company', 'title', 'stage', 'owner', 'created_at', 'updated_at', 'merged_into'];
  put('profile', h('dl', { class: 'kv' }, fields.filter((f) => contact[f]).map((f) => [h('dt', {}, f.replace('_', ' ')), h('dd', {}, String(contact[f]))]),
    Object.entries(contact.attributes || {}).map(([k, v]) => [h('dt', {}, k), h('dd', {}, JSON.stringify(v))])));
  put('identities', ...(contact.identities.length ? contact.identities.map((i) =>
    h('li', {}, h('strong', {}, i.kind), ' ', i.value, i.primary ? ' (primary)' : '')) : [empty('None')]));
  document.getElementById('history').href = `/audit?target=${encodeURIComponent(id)}`;

  const [tags, interactions, deals, tasks, notes] = await Promise.all([
    all('tag.list', { target_id: id }), all('interaction.list', { contact_id: id }),
    all('deal.list', { contact_id: id }), all('task.list', { contact_id: id }), all('note.list', { contact_id: id }),
  ]);
  put('tags', ...(tags.length ? tags.map((t) => h('li', { class: 'chip' }, t.name)) : [empty('No tag')]));
  interactions.sort((a, b) => (a.occurred_at < b.occurred_at ? 1 : -1));
  put('timeline', ...(interactions.length ? interactions.map((ix) => h('li', {},
    time(ix.occurred_at), ' ', h('span', { class: 'badge' }, `${ix.kind}${ix.direction ? ' · ' + ix.direction : ''}`), ' ',
    h('strong', {}, ix.subject || '(no subject)'),
    ix.body ? h('details', {}, h('summary', {}, 'Body'), h('pre', { class: 'body' }, ix.body)) : '')) : [empty('No interaction yet')]));
  put('deals', ...(deals.length ? deals.map((d) => h('li', {},
    h('strong', {}, d.title), ` — ${money(d.amount, d.currency)} · ${d.stage} (${d.status})`)) : [empty('No deal')]));
  put('tasks', ...(tasks.length ? tasks.map((t) => h('li', {},
    h('span', { class: `badge ${t.status}` }, t.status), ' ', t.title, t.due_at ? ` — due ${when(t.due_at)}` : '')) : [empty('No task')]));
  put('notes', ...(notes.length ? notes.map((n) => h('article', { class: 'note' },
    h('pre', { class: 'body' }, n.body), h('p', { class: 'muted' }, n.author || '', ' ', time(n.created_at)))) : [h('p', { class: 'muted' }, 'No note')]));
}

main().catch((e) => { put('profile', h('p', { class: 'error', role: 'alert' }, e.message)); failed(e); });
