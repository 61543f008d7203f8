// The bench's keys and tokens: one key per algorithm, RFC 9068 access tokens signed with them, and the bad
// tokens the functional checks need.
import { createHash, createPrivateKey, randomUUID, sign } from "node:crypto";
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
    dpop: await dpopClient(mint),
    wrongAudience: await mint("ES256", { aud: "https://someone-else.example" }),
    wrongIssuer: await mint("ES256", { iss: "https://evil.example" }),
    noScope: await mint("ES256", { claims: { scope: "api:other" } }),
  };
}

export const bearer = (token) => ({ authorization: `Bearer ${token}` });

/** A DPoP client (RFC 9449): its ES256 key, and an ES256 access token bound to it (`cnf.jkt`). */
async function dpopClient(mint) {
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  const token = await mint("ES256", { claims: { cnf: { jkt: await jose.calculateJwkThumbprint(jwk) } } });
  return { token, jwk, privateJwk: await jose.exportJWK(privateKey) };
}

/**
 * A fresh DPoP proof for GET `htu`, signed synchronously (node:crypto), so the load generator can make one
 * per request inside autocannon's synchronous `setupRequest`.
 */
export function dpopProofSigner({ token, jwk, privateJwk }) {
  const key = createPrivateKey({ key: privateJwk, format: "jwk" });
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = encode({ typ: "dpop+jwt", alg: "ES256", jwk });
  const ath = createHash("sha256").update(token).digest("base64url");
  return (htu) => {
    const input = `${header}.${encode({ jti: randomUUID(), htm: "GET", htu, iat: Math.floor(Date.now() / 1000), ath })}`;
    return `${input}.${sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
  };
}
