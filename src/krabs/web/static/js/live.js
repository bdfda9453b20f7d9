// A live SSE subscription with a visible connection state. EventSource reconnects by itself and
// sends Last-Event-ID, so the server resumes right after the last event this page saw.
export function subscribe(url, types, onEvent, { onState } = {}) {
  const dot = document.getElementById('live');
  const text = document.getElementById('live-text');
  const show = (state, label) => {
    if (dot) dot.dataset.state = state;
    if (text) text.textContent = label;
    onState?.(state);
  };
  const source = new EventSource(url, { withCredentials: true });
  source.addEventListener('open', () => show('open', 'Live'));
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) show('closed', 'Disconnected: reload the page');
    else show('reconnecting', 'Reconnecting…');
  });
  for (const type of types) {
    source.addEventListener(type, (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      onEvent(type, data, message.lastEventId);
    });
  }
  return { source, close: () => { source.close(); show('closed', 'Finished: the run takes no more events'); } };
}

export const EVENT_TYPES = [
  'tool_call', 'span', 'run.started', 'run.completed', 'run.failed', 'run.cancelled', 'run.expired',
  'run.waiting_for_input', 'run.input', 'run.closed', 'run.resumed',
];
export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);

export function ms(value) {
  if (value === null || value === undefined) return '—';
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Number(value).toFixed(1)} ms`;
}

export function usd(value) {
  return value ? `$${Number(value).toFixed(4)}` : '$0';
}
