// Contacts: search and filter through contact.list, one page at a time.
import { call } from './api.js';
import { h, status, failed, time, formArgs, link } from './ui.js';

const form = document.getElementById('search');
const tbody = document.querySelector('#contacts tbody');
const more = document.getElementById('more');
let filters = {};
let cursor = null;

const tagName = (t) => (typeof t === 'string' ? t : t.name);

function row(c) {
  return h('tr', { dataset: { id: c.id } },
    h('td', {}, link(`/contacts/${c.id}`, c.display_name || c.id)),
    h('td', {}, c.company || ''),
    h('td', {}, c.stage || ''),
    h('td', {}, (c.identities || []).slice(0, 3).map((i) => h('div', {}, `${i.kind}: ${i.value}`))),
    h('td', {}, (c.tags || []).map((t) => h('span', { class: 'chip' }, tagName(t)))),
    h('td', {}, time(c.updated_at)));
}

async function load(reset) {
  if (reset) { cursor = null; tbody.replaceChildren(); }
  try {
    const page = await call('contact.list', { ...filters, limit: 50, ...(cursor ? { starting_after: cursor } : {}) });
    tbody.append(...page.data.map(row));
    cursor = page.data.length ? page.data[page.data.length - 1].id : cursor;
    more.hidden = !page.has_more;
    if (!tbody.children.length) tbody.append(h('tr', {}, h('td', { colspan: 6 }, 'No contact matches.')));
    status(`${tbody.querySelectorAll('tr[data-id]').length} contact(s) shown`);
  } catch (e) { failed(e); }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  filters = formArgs(form);
  history.replaceState(null, '', '?' + new URLSearchParams(filters));
  load(true);
});
more.addEventListener('click', () => load(false));
for (const [key, value] of new URLSearchParams(location.search)) {
  if (form.elements[key]) { form.elements[key].value = value; filters[key] = value; }
}
load(true);
