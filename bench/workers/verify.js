/* global atob */
// Row 5 of `npm run bench`: the bare cost of WebCrypto signature verification inside workerd.
// GET /?alg=ES256&n=50 verifies the same valid signature n times (sequentially, as a gate does one per
// request) and answers 200 "ok", or 500 if any verification failed. The vectors (public JWK, signing input
// and signature of the benchmark's own tokens) come from the VECTORS binding. No origin fetch.
//
// With `op` (only for `--diagnose`), the loop runs another operation n times instead, to price the building
// blocks of a gate request: digest (SHA-256 of the token), log (console.log of one decision-sized JSON line),
// timer (setTimeout + clearTimeout), request (copy the request's headers and build a new Request with them).
//
// Inside workerd the clock does not advance while JavaScript runs, so nothing is timed here: lib/analysis.mjs derives
// the per-operation cost from the throughput difference between n=50 and n=1, measured from outside.
const PARAMS = {
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  ES256: { import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } },
  EdDSA: { import: { name: "Ed25519" }, verify: { name: "Ed25519" } },
};

let vectors;

function bytes(base64url) {
  const binary = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function load(env) {
  const loaded = {};
  for (const [alg, vector] of Object.entries(env.VECTORS)) {
    const jwk = { ...vector.jwk };
    for (const member of ["kid", "alg", "use"]) delete jwk[member];
    loaded[alg] = {
      params: PARAMS[alg].verify,
      key: await crypto.subtle.importKey("jwk", jwk, PARAMS[alg].import, false, ["verify"]),
      data: new TextEncoder().encode(vector.data),
      signature: bytes(vector.signature),
      token: `${vector.data}.${vector.signature}`,
    };
  }
  return loaded;
}

const OPS = {
  async verify(vector) {
    return crypto.subtle.verify(vector.params, vector.key, vector.signature, vector.data);
  },
  async digest(vector) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(vector.token));
    return digest.byteLength === 32;
  },
  async log() {
    console.log(
      JSON.stringify({ component: "portcullis", event: "decision", outcome: "allow", method: "GET", path: "/v1/items/42", rule: "GET /v1/**", issuer: "http://127.0.0.1:40000", kid: "bench-es256", via: "jwt", ms: 0 }),
    );
    return true;
  },
  async timer() {
    clearTimeout(setTimeout(() => {}, 30_000));
    return true;
  },
  async request(_vector, request) {
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    return new Request(request, { headers }).method === request.method;
  },
};

export default {
  async fetch(request, env) {
    // Only the settled value is shared between requests.
    if (!vectors) {
      const loaded = await load(env);
      vectors ??= loaded;
    }
    const url = new URL(request.url);
    const vector = vectors[url.searchParams.get("alg") ?? "ES256"];
    const op = OPS[url.searchParams.get("op") ?? "verify"];
    const n = Number(url.searchParams.get("n") ?? "1");
    if (!vector || !op || !Number.isInteger(n) || n < 0 || n > 10_000) return new Response("bad request", { status: 400 });
    let ok = 0;
    for (let i = 0; i < n; i++) if (await op(vector, request)) ok++;
    return new Response(ok === n ? "ok" : "failed", { status: ok === n ? 200 : 500 });
  },
};
