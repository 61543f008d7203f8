import { loadConfig } from "../config/load";
import { createGate } from "./gate";

/**
 * Compiles the request path before the first request needs it. V8 compiles a function when it is first
 * called, and the first verified request calls much of the gate and of jose for the first time: measured in
 * workerd, compiling and first-running the validation step was most of a cold first request (README,
 * "Performance"). So while the isolate starts (on Cloudflare, during the client's TLS handshake), a
 * throwaway gate of its own, sharing no state with the real one, loads its key set the way a fresh isolate
 * does (from KV: here an in-memory stand-in holding the set), verifies a fixed ES256 token and then hits its
 * token cache with it. It has its own issuer, keys, caches and clock and writes no log; nothing it does
 * reaches a client, KV or the real gate. Best effort: what fails here (startup allows no I/O, and its clock
 * is frozen at 0, hence the fixed one) is compiled on the first request instead. Not covered: forwarding
 * (its origin timeout is a timer, which startup does not allow) and refusals (a response body neither).
 *
 * The key and token were made once with jose (`generateKeyPair("ES256")`, `new SignJWT(...).sign(privateKey)`,
 * exp 2100-01-01) and the private key discarded. Only this gate knows the key, so the token verifies
 * nowhere else. One algorithm is enough: the code the others add is small (measured: the first request
 * gains as much for RS256 and EdDSA tokens), while each further key and token costs start-up time.
 */

const ISSUER = "https://warm-up.portcullis.invalid/";
/** A moment the token is valid at (just after its `iat`, 2026-01-01). */
const NOW = 1_767_225_601_000;
const KEY = {
  kty: "EC",
  x: "v9KQ3EIhZu1tPZfKbPeRBYfmW1MKQDDM4ADWwivzsNI",
  y: "7wZQryR7ZSag-pNoFAwLezBwTndHIUYE3ju6zETCXME",
  crv: "P-256",
  kid: "warm-up-es256",
  alg: "ES256",
  use: "sig",
};
/** Exported for the tests, which check that the deployed Worker never accepts it. */
export const TOKEN =
  "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Indhcm0tdXAtZXMyNTYifQ.eyJzY29wZSI6Indhcm0tdXAiLCJjbGllbnRfaWQiOiJ3YXJtLXVwIiwiaXNzIjoiaHR0cHM6Ly93YXJtLXVwLnBvcnRjdWxsaXMuaW52YWxpZC8iLCJhdWQiOiJodHRwczovL3dhcm0tdXAucG9ydGN1bGxpcy5pbnZhbGlkIiwic3ViIjoid2FybS11cCIsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.CigxnX9uC60OqkjSSIA7upinOx2AgmLOHKl8_EBVmM3_PgdqjwnydpkyWfTB301aywginLzDsfv8KH1kUjxcgw";

/** How many of its requests the throwaway gate allowed (both, when everything on the way compiled and ran). */
export async function warmUp(): Promise<number> {
  let allowed = 0;
  const jwksUri = `${ISSUER}jwks.json`;
  const parsed = loadConfig(undefined, {
    issuers: [{ issuer: ISSUER, audiences: [ISSUER.slice(0, -1)], jwks_uri: jwksUri, algorithms: ["ES256"] }],
    routes: [{ path: "/**", methods: ["GET"], scopes: ["warm-up"] }],
  });
  if (!parsed.ok) return allowed;
  const gate = createGate(parsed.config, { log: () => {}, now: () => NOW });
  // The stored form of validate/jwks.ts, as another isolate would have written it.
  const stored = { v: 2, keys: [KEY], fetched_at: NOW, expires_at: NOW + 3_600_000, jwks_uri: jwksUri, jwks_uri_expires_at: null };
  const env = { [parsed.config.kv_binding]: { get: async () => stored, put: async () => undefined } };
  // Verified, then served from the token cache: both paths a first request may take.
  for (let i = 0; i < 2; i++) {
    const outcome = await gate.check(new Request(`${ISSUER}items/1`, { headers: { authorization: `Bearer ${TOKEN}` } }), env, () => {});
    if ("decision" in outcome) allowed++;
  }
  return allowed;
}
