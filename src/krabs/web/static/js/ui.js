// Small DOM helpers. Text always goes in as text nodes, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function status(message, kind = 'info') {
  const box = document.getElementById('status');
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
}

export function failed(error) {
  status(`${error.code || 'error'}: ${error.message}`, 'error');
}

export function money(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

export function time(ts) {
  return h('time', { datetime: ts, title: ts }, when(ts));
}

export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** A before/after table of row images: only the fields that differ, per row. */
export function diffTable(changes) {
  const rows = [];
  for (const change of changes || []) {
    const before = change.before || {};
    const after = change.after || {};
    const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const field of fields) {
      const a = JSON.stringify(before[field] ?? null);
      const b = JSON.stringify(after[field] ?? null);
      if (a === b && change.before && change.after) continue;
      rows.push(h('tr', {},
        h('td', {}, change.table), h('td', {}, change.id || after.id || before.id), h('td', {}, field),
        h('td', { class: 'before' }, change.before ? a : '∅'),
        h('td', { class: 'after' }, change.after ? b : '∅')));
    }
  }
  return h('table', { class: 'grid diff' },
    h('thead', {}, h('tr', {}, ['Table', 'Id', 'Field', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 5 }, 'No field changed'))));
}

/** The dry-run diff format ({table, id, field, before, after}) as the same table. */
export function planTable(diff) {
  return h('table', { class: 'grid diff' },
    h('thead', {}, h('tr', {}, ['Table', 'Id', 'Field', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, (diff || []).map((d) => h('tr', {},
      h('td', {}, d.table), h('td', {}, d.id), h('td', {}, d.field),
      h('td', { class: 'before' }, JSON.stringify(d.before)), h('td', { class: 'after' }, JSON.stringify(d.after))))));
}

export function formArgs(form) {
  const args = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (typeof value === 'string' && value.trim() !== '') args[key] = value.trim();
  }
  return args;
}

export function link(href, text) {
  return h('a', { href }, text);
}
