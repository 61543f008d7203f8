// What Portcullis is compared with: Hono's own jwk middleware (rows 4 and 4b, bench/workers/hono-jwk.js),
// the minimal jose gate (row 7, bench/workers/jose-gate.js), the floor Workers (row 8, bench/workers/floor.js,
// started with the diagnostic Workers) and the bare cost of one crypto.subtle.verify (row 5, bench/workers/verify.js).
import { AUDIENCE, SCOPE } from "./constants.mjs";

export function peerWorkerSpecs({ scripts, issuer, origin, keys, tokens }) {
  const hono = (name, who, keysMode, verify) => ({
    name,
    script: scripts.hono,
    bindings: { ORIGIN_URL: origin.url, JWKS_URI: issuer.jwksUri(who), ISSUER: issuer.url, AUDIENCE, SCOPE, KEYS_MODE: keysMode, VERIFY: verify },
  });
  return [
    hono("hono", "hono", "jwks_uri", "full"),
    hono("hono-cached", "hono-cached", "cached", "full"),
    // Functional probes of hono's defaults (reported, never measured).
    hono("hono-probe-typ-only", "probe", "jwks_uri", "typ_only"),
    hono("hono-probe-defaults", "probe", "jwks_uri", "none"),
    { name: "jose", script: scripts.jose, bindings: { ORIGIN_URL: origin.url, JWKS: keys.jwks, ISSUER: issuer.url, AUDIENCE, SCOPE } },
    { name: "verify", script: scripts.verify, bindings: { VECTORS: keys.vectors(tokens) } },
  ];
}
