// The dashboard's only way to the server: POST /v1/{op} with the session cookie and its CSRF token.
const meta = document.querySelector('meta[name="csrf-token"]');
export const csrf = meta ? meta.content : '';

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || 'error';
    this.error = error;
  }
}

function signInAgain() {
  location.assign('/signin?next=' + encodeURIComponent(location.pathname + location.search));
}

/** Call one operation. `dryRun` asks the engine for the plan only; `idempotencyKey` makes a retry safe. */
export async function call(op, args = {}, { dryRun = false, idempotencyKey, run } = {}) {
  const headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf };
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  if (run) headers['X-Krabs-Run'] = run;
  const body = dryRun ? { ...args, dry_run: true } : args;
  const response = await fetch('/v1/' + op, {
    method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin',
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) signInAgain();
    throw new ApiError(response.status, data.error || {});
  }
  return data;
}

let schemaPromise = null;
/** The contract (GET /v1/schema), fetched once per page. */
export function schema() {
  schemaPromise ??= fetch('/v1/schema', { credentials: 'same-origin' }).then(async (r) => {
    if (r.status === 401) signInAgain();
    if (!r.ok) throw new ApiError(r.status, (await r.json()).error || {});
    return r.json();
  });
  return schemaPromise;
}

/** True when the server offers this operation (pages adapt to what the contract has). */
export async function has(op) {
  return op in (await schema()).operations;
}

export function newKey() {
  return 'dash-' + crypto.randomUUID();
}
