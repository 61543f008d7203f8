// Portcullis as the bench runs it (rows 2, 3, 3b and 3c): one issuer, one route, and the token cache off, at its
// defaults, or at its defaults without the per-request log line; row 3c with DPoP (its replay store a
// SQLite-backed Durable Object in the same workerd). Rows 2s and 3s are issue 17's setting, the one compared
// with the minimal jose gate: the same keys given inline (`keys`, no JWKS fetch) and `log.allowed = false`,
// token cache off and on.
import { ALGS, AUDIENCE, SCOPE } from "./constants.mjs";

/** PORTCULLIS_CONFIG for the Worker `who` (its JWKS fetches are counted under that name). */
export function portcullisConfig(issuer, who, tokenCache, extra = {}, issuerExtra = {}) {
  return {
    realm: "bench",
    issuers: [{ issuer: issuer.url, audiences: [AUDIENCE], jwks_uri: issuer.jwksUri(who), algorithms: ALGS, ...issuerExtra }],
    routes: [{ path: "/v1/**", methods: ["GET"], scopes: [SCOPE] }],
    ...(tokenCache === undefined ? {} : { token_cache: tokenCache }),
    ...extra,
  };
}

export function portcullisWorkerSpecs({ bundle, issuer, origin, keys }) {
  const spec = (name, tokenCache, extra, issuerExtra) => ({
    name,
    script: bundle.script,
    bindings: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: portcullisConfig(issuer, name, tokenCache, extra, issuerExtra) },
    kv: `kv-${name}`,
  });
  return [
    spec("pc-nocache", { enabled: false }),
    // The cache's defaults (enabled, max_entries, max_ttl): the field is left out, as a user would.
    spec("pc-cache", undefined),
    // The cache's defaults again, without a log line per allowed request (`log.allowed = false`).
    spec("pc-quiet", undefined, { log: { allowed: false } }),
    ...[
      ["pc-static-nocache", { enabled: false }],
      ["pc-static-cache", undefined],
    ].map(([name, tokenCache]) => {
      const config = portcullisConfig(issuer, name, tokenCache, { log: { allowed: false } });
      const issuers = [{ issuer: issuer.url, audiences: [AUDIENCE], keys: keys.jwks.keys, algorithms: ALGS }];
      return { ...spec(name), bindings: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: { ...config, issuers } } };
    }),
    // Row 3c: the cache's defaults, DPoP allowed: every request a fresh proof, one replay-store request each.
    { ...spec("pc-dpop", undefined, {}, { dpop: { mode: "allowed", algorithms: ["ES256"] } }), durableObjects: true },
  ];
}
