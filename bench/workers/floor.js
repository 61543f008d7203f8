/* global atob, btoa */
// Diagnostic rows of `npm run bench -- --diagnose` (never part of the main table): the least work any gate
// must do per request in workerd, with none of Portcullis's checks. It reads the Authorization header, copies
// the headers minus Authorization plus one identity header, and forwards like the baseline. Two modes (FLOOR
// binding), both for the ES256 token:
// - "cache": SHA-256 of the token, a Map lookup (the first request fills it): a floor for row 3;
// - "verify": one crypto.subtle.verify of the token's signature with a key imported once: a floor for row 2.
// No claim, issuer, audience, expiry, scope or path checks, no log line, no origin timeout: this is not an
// authorizer, only the price of the operations one cannot avoid.
let vector;
const cache = new Map();

function bytes(base64url) {
  const binary = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function load(env) {
  const { kty, crv, x, y } = env.VECTORS.ES256.jwk;
  return { key: await crypto.subtle.importKey("jwk", { kty, crv, x, y }, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]) };
}

async function known(token, env) {
  if (env.FLOOR === "cache") {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
    const id = btoa(String.fromCharCode(...digest));
    if (!cache.has(id)) cache.set(id, true);
    return cache.get(id);
  }
  vector ??= await load(env);
  const dot = token.lastIndexOf(".");
  return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, vector.key, bytes(token.slice(dot + 1)), new TextEncoder().encode(token.slice(0, dot)));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const token = (request.headers.get("authorization") ?? "").slice(7);
    if (!(await known(token, env))) return new Response(null, { status: 401 });
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    headers.set("x-auth-sub", "bench-user");
    return fetch(new Request(env.ORIGIN_URL + url.pathname + url.search, { method: request.method, headers, body: request.body }));
  },
};
