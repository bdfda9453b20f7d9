// RFC 9162 inclusion proofs checked in the browser: the page does not take the server's word that
// an action is in the signed log, it recomputes the tree head from the record and the proof.
const enc = new TextEncoder();

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function unhex(text) {
  return new Uint8Array(text.match(/../g).map((b) => parseInt(b, 16)));
}

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all));
}

export const canVerify = () => Boolean(globalThis.crypto?.subtle);

export async function leafHash(record) {
  return hex(await sha256(new Uint8Array([0]), enc.encode(record)));
}

/** The root that `proof` leads to from leaf `index` of a tree of `size` (RFC 9162 §2.1.3.2). */
export async function rootFromInclusion(index, size, leafHex, proof) {
  if (index >= size) throw new Error('leaf index outside the tree');
  let fn = index;
  let sn = size - 1;
  let r = unhex(leafHex);
  const one = new Uint8Array([1]);
  for (const p of proof.map(unhex)) {
    if (sn === 0) throw new Error('proof is longer than the tree is deep');
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(one, p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(one, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('proof is shorter than the tree is deep');
  return hex(r);
}

/** Check an audit.proof answer against the action's record as shown; returns a sentence. */
export async function verifyInclusion(answer, record) {
  if (answer.record !== record) throw new Error('the log holds a different record for this action');
  const leaf = await leafHash(record);
  if (leaf !== answer.leaf_hash) throw new Error('the record does not hash to the proven leaf');
  const root = await rootFromInclusion(answer.leaf_index, answer.tree_size, leaf, answer.proof);
  if (root !== answer.root_hash) throw new Error('the proof does not lead to the tree head');
  return `Verified in this browser: record ${answer.leaf_index + 1} of ${answer.tree_size}, tree head ${root.slice(0, 16)}…`;
}
