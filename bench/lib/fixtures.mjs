// The bench's keys and tokens: one key per algorithm, RFC 9068 access tokens signed with them, and the bad
// tokens the functional checks need.
import * as jose from "jose";
import { ALGS, AUDIENCE, SCOPE } from "./constants.mjs";

export async function makeKeys() {
  const pairs = {};
  for (const alg of ALGS) {
    pairs[alg] = await jose.generateKeyPair(alg, { extractable: true, ...(alg === "RS256" ? { modulusLength: 2048 } : {}) });
  }
  const publicJwks = {};
  for (const alg of ALGS) {
    publicJwks[alg] = { ...(await jose.exportJWK(pairs[alg].publicKey)), kid: `bench-${alg.toLowerCase()}`, alg, use: "sig" };
  }
  return {
    pairs,
    publicJwks,
    jwks: { keys: ALGS.map((alg) => publicJwks[alg]) },
    /** For the verify Worker: each algorithm's public key and one token's signing input and signature. */
    vectors: (tokens) =>
      Object.fromEntries(
        ALGS.map((alg) => {
          const [header, payload, signature] = tokens.valid[alg].split(".");
          return [alg, { jwk: publicJwks[alg], data: `${header}.${payload}`, signature }];
        }),
      ),
  };
}

/** RFC 9068 access tokens, valid for 6 hours, plus the bad ones the functional checks need. */
export async function makeTokens(keys, issuer) {
  const now = Math.floor(Date.now() / 1000);
  const mint = (alg, overrides = {}) =>
    new jose.SignJWT({ scope: SCOPE, client_id: "bench-client", ...overrides.claims })
      .setProtectedHeader({ alg, typ: "at+jwt", kid: `bench-${alg.toLowerCase()}` })
      .setIssuer(overrides.iss ?? issuer)
      .setAudience(overrides.aud ?? AUDIENCE)
      .setSubject("bench-user")
      .setIssuedAt(now)
      .setJti(crypto.randomUUID())
      .setExpirationTime(now + 6 * 3600)
      .sign(keys.pairs[alg].privateKey);
  const valid = {};
  for (const alg of ALGS) valid[alg] = await mint(alg);
  return {
    valid,
    wrongAudience: await mint("ES256", { aud: "https://someone-else.example" }),
    wrongIssuer: await mint("ES256", { iss: "https://evil.example" }),
    noScope: await mint("ES256", { claims: { scope: "api:other" } }),
  };
}

export const bearer = (token) => ({ authorization: `Bearer ${token}` });
