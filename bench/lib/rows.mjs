// The rows of the report: what each measures, on which Worker, with which token and path.
import { ALGS, VERIFY_N } from "./constants.mjs";
import { diagnosticRows } from "./diagnose.mjs";
import { bearer } from "./fixtures.mjs";

export function benchRows(tokens, { diagnose, onlyRe }) {
  const token = (alg) => bearer(tokens.valid[alg]);
  const perAlg = (group, name, worker) => ALGS.map((alg) => ({ id: `${worker}-${alg}`, group, name, worker, alg, headers: token(alg) }));
  const rows = [
    { id: "baseline", group: "1", name: "baseline pass-through (no auth)", worker: "baseline", alg: "-", headers: token("ES256") },
    ...perAlg("2", "Portcullis, token cache off", "pc-nocache"),
    ...perAlg("3", "Portcullis, token cache on, same token", "pc-cache"),
    ...perAlg("3b", "Portcullis, token cache on, same token, log.allowed = false", "pc-quiet"),
    ...perAlg("2s", "Portcullis, static keys, log.allowed = false, token cache off", "pc-static-nocache"),
    ...perAlg("3s", "Portcullis, static keys, log.allowed = false, token cache on, same token", "pc-static-cache"),
    ...perAlg("7", "minimal jose gate (jwtVerify + local key set + scope + header)", "jose"),
    ...perAlg("8", "floor, no checks: SHA-256 + Map lookup + header copy + forward", "floor-cache"),
    { id: "floor-verify-ES256", group: "8", name: "floor, no checks: one crypto.subtle.verify + header copy + forward", worker: "floor-verify", alg: "ES256", headers: token("ES256") },
    // A fresh proof per request (made by the load generator): proof verification + one Durable Object request.
    { id: "pc-dpop-ES256", group: "3c", name: "Portcullis, DPoP-bound token, token cache on, a fresh proof per request", worker: "pc-dpop", alg: "ES256", headers: { authorization: `DPoP ${tokens.dpop.token}` }, dpop: tokens.dpop },
    ...perAlg("4", "hono/jwk, jwks_uri (as documented)", "hono"),
    ...perAlg("4b", "hono/jwk, keys cached by user code", "hono-cached"),
    ...ALGS.flatMap((alg) =>
      VERIFY_N.map((n) => ({ id: `verify-${alg}-${n}`, group: "5", name: `crypto.subtle.verify x${n} per request`, worker: "verify", alg, n, path: `/?alg=${alg}&n=${n}`, headers: {} })),
    ),
    ...(diagnose ? diagnosticRows(tokens) : []),
  ].filter((row) => !onlyRe || onlyRe.test(row.id));
  for (const row of rows) row.runs = [];
  return rows;
}
