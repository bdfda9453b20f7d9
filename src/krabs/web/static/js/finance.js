// Finance: MRR movements, the funnel, expenses and channel economics as charts, every number a
// link to the rows behind it (the operations' `explain: true` ids).
import { call } from './api.js';
import { h, status, failed, money } from './ui.js';

const form = document.getElementById('period');
const charts = {};
const COLORS = {
  new: '#1b7f3b', expansion: '#4caf50', reactivation: '#00838f', contraction: '#e08a00', churn: '#c62828',
  entered: '#3558a8', converted: '#1b7f3b', spend: '#c62828', revenue: '#1b7f3b', roas: '#3558a8', cac: '#e08a00',
};
const MOVEMENTS = ['new', 'expansion', 'reactivation', 'contraction', 'churn'];
let data = {};

function isoDay(d) { return d.toISOString().slice(0, 10); }

function defaults() {
  const today = new Date();
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 11, 1));
  form.elements.from.value ||= isoDay(start);
  form.elements.to.value ||= isoDay(today);
}

/** A number that opens the rows behind it. */
function figure(text, label, ids) {
  if (!ids || !ids.length) return h('span', {}, text);
  return h('button', { type: 'button', class: 'figure', 'aria-label': `${label}: ${text}, show ${ids.length} row(s)`,
    onclick: () => showRows(label, ids) }, text);
}

async function showRows(label, ids) {
  const section = document.getElementById('rows');
  const body = document.getElementById('rows-body');
  section.hidden = false;
  document.getElementById('rows-h').textContent = `Rows behind: ${label}`;
  body.replaceChildren(h('p', {}, `Loading ${ids.length} row(s)…`));
  section.focus();
  try {
    const deals = await Promise.all(ids.filter((i) => i.startsWith('dl_')).slice(0, 50).map((id) => call('deal.get', { id })));
    const wanted = new Set(ids.filter((i) => i.startsWith('ex_')));
    const expenses = [];
    let after = null;
    for (let i = 0; wanted.size && i < 20; i += 1) {
      const page = await call('expense.list', { limit: 100, ...(after ? { starting_after: after } : {}) });
      expenses.push(...page.data.filter((x) => wanted.has(x.id)));
      if (!page.has_more || !page.data.length || expenses.length === wanted.size) break;
      after = page.data[page.data.length - 1].id;
    }
    const rows = [
      ...deals.map((d) => h('tr', { dataset: { id: d.id } }, h('td', {}, h('code', {}, d.id)), h('td', {}, d.title),
        h('td', {}, money(d.amount, d.currency)), h('td', {}, `${d.stage} · ${d.status}${d.source_channel ? ' · ' + d.source_channel : ''}`))),
      ...expenses.map((x) => h('tr', { dataset: { id: x.id } }, h('td', {}, h('code', {}, x.id)), h('td', {}, x.description || x.category),
        h('td', {}, money(x.amount, x.currency)), h('td', {}, `${x.incurred_on} · ${x.category}${x.channel ? ' · ' + x.channel : ''}`))),
    ];
    body.replaceChildren(h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['Id', 'What', 'Amount', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
  } catch (e) { body.replaceChildren(h('p', { class: 'error' }, e.message)); }
}

function draw(id, config) {
  charts[id]?.destroy();
  const canvas = document.getElementById(id);
  charts[id] = new window.Chart(canvas, {
    ...config,
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      onClick: (_event, elements, chart) => {
        const hit = elements[0];
        if (!hit) return;
        const ds = chart.data.datasets[hit.datasetIndex];
        const ids = ds.ids?.[hit.index];
        if (ids?.length) showRows(`${ds.label} · ${chart.data.labels[hit.index]}`, ids);
      },
      ...config.options,
    },
  });
}

function table(headers, rows) {
  return h('table', { class: 'grid numbers' },
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c)))))));
}

function render() {
  const currency = form.elements.currency.value;
  const { mrr, funnel, expenses } = data;
  // MRR movements, stacked: gains above the axis, losses below.
  const months = mrr.months.map((m) => m.month);
  const cell = (m) => m.by_currency[currency] || { ids: {} };
  draw('mrr-chart', {
    type: 'bar',
    data: { labels: months, datasets: MOVEMENTS.map((mv) => ({
      label: mv, backgroundColor: COLORS[mv], stack: 'mrr',
      data: mrr.months.map((m) => (cell(m)[mv] || 0) / 100), ids: mrr.months.map((m) => cell(m).ids?.[mv] || []) })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: currency } } } },
  });
  document.getElementById('mrr-table').replaceChildren(table(['Month', ...MOVEMENTS, 'net', 'ending'],
    mrr.months.map((m) => [m.month, ...[...MOVEMENTS, 'net', 'ending'].map((mv) =>
      figure(money(cell(m)[mv] ?? 0, currency), `${mv} ${m.month}`, cell(m).ids?.[mv]))])));

  draw('funnel-chart', {
    type: 'bar',
    data: { labels: funnel.stages.map((s) => s.stage), datasets: ['entered', 'converted'].map((k) => ({
      label: k, backgroundColor: COLORS[k], data: funnel.stages.map((s) => s[k] ?? 0), ids: funnel.stages.map((s) => s.ids?.[k] || []) })) },
    options: { indexAxis: 'y' },
  });
  document.getElementById('funnel-table').replaceChildren(table(['Stage', 'Entered', 'Converted', 'Rate'],
    funnel.stages.map((s) => [s.stage, figure(String(s.entered), `entered ${s.stage}`, s.ids?.entered),
      figure(s.converted === null ? '—' : String(s.converted), `converted ${s.stage}`, s.ids?.converted),
      s.conversion_rate === null ? '—' : `${(Number(s.conversion_rate) * 100).toFixed(1)} %`])));

  const spend = expenses.by_currency[currency] || { categories: {} };
  const cats = Object.entries(spend.categories);
  draw('expenses-chart', {
    type: 'bar',
    data: { labels: cats.map(([c]) => c), datasets: [{ label: `spend (${currency})`, backgroundColor: COLORS.spend,
      data: cats.map(([, v]) => v.amount / 100), ids: cats.map(([, v]) => v.ids || []) }] },
  });
  document.getElementById('expenses-table').replaceChildren(table(['Category', 'Amount', 'Count'],
    cats.map(([c, v]) => [c, figure(money(v.amount, currency), `spend ${c}`, v.ids), String(v.count)])));

  const chans = funnel.channels.map((c) => [c.channel ?? '(no channel)', c.by_currency?.[currency] || null, c]).filter(([, v]) => v);
  draw('channels-chart', {
    type: 'bar',
    data: { labels: chans.map(([c]) => c), datasets: [
      { label: 'ROAS', backgroundColor: COLORS.roas, yAxisID: 'roas', data: chans.map(([, v]) => (v.roas === null ? 0 : Number(v.roas))), ids: chans.map(([, v]) => v.ids?.revenue || []) },
      { label: `CAC (${currency})`, backgroundColor: COLORS.cac, yAxisID: 'cac', data: chans.map(([, v]) => (v.cac ?? 0) / 100), ids: chans.map(([, v]) => v.ids?.spend || []) },
    ] },
    options: { scales: { roas: { position: 'left', title: { display: true, text: 'ROAS ×' } }, cac: { position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: `CAC ${currency}` } } } },
  });
  document.getElementById('channels-table').replaceChildren(table(['Channel', 'Spend', 'Revenue', 'New customers', 'ROAS', 'CAC'],
    chans.map(([c, v, whole]) => [c, figure(money(v.spend, currency), `spend ${c}`, v.ids?.spend),
      figure(money(v.revenue, currency), `revenue ${c}`, v.ids?.revenue),
      figure(String(whole.new_customers ?? 0), `new customers ${c}`, whole.new_customer_ids || v.ids?.new_customers),
      v.roas ?? '—', v.cac === null || v.cac === undefined ? '—' : money(v.cac, currency)])));
  status(`Figures for ${mrr.from} to ${mrr.to} in ${currency}`);
}

async function load() {
  const period = { from: form.elements.from.value, to: form.elements.to.value, explain: true };
  try {
    const [mrr, funnel, expenses] = await Promise.all([
      call('finance.mrr', period), call('finance.funnel', period), call('finance.expenses_by_category', period)]);
    data = { mrr, funnel, expenses };
    const currencies = [...new Set([...mrr.currencies, ...Object.keys(expenses.by_currency)])].sort();
    const select = form.elements.currency;
    const keep = select.value;
    select.replaceChildren(...(currencies.length ? currencies : ['—']).map((c) => h('option', { value: c }, c)));
    if (currencies.includes(keep)) select.value = keep;
    render();
  } catch (e) { failed(e); }
}

form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
form.elements.currency.addEventListener('change', () => data.mrr && render());
defaults();
load();
