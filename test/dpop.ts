import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { sha256Base64url } from "../src/lib/digest";
import type { PortcullisConfig } from "../src/config/schema";
import { AUDIENCE, baseConfig, Fixture, ISSUER, makeGate, makeKey, mint, type AlgName, type Gate, type TestKey } from "./helpers";

/** DPoP test helpers (RFC 9449): client proof keys, proofs, DPoP-bound tokens and DPoP-enabled gates. */

export interface ProofKey {
  alg: AlgName;
  privateKey: CryptoKey;
  /** The public JWK as a client puts it in the proof header. */
  jwk: JWK;
  /** Its RFC 7638 thumbprint: the token's `cnf.jkt`. */
  jkt: string;
}

export async function makeProofKey(alg: AlgName = "ES256"): Promise<ProofKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

export interface ProofClaims {
  htm?: string;
  htu?: string;
  /** The access token `ath` is computed from (ignored when `ath` is given). */
  token?: string;
  ath?: string | null;
  iat?: number;
  jti?: string;
  nonce?: string;
  [claim: string]: unknown;
}

/** A valid proof for `htm` `htu` and `token`, unless overridden (`null` removes a claim). */
export async function proof(key: ProofKey, claims: ProofClaims, header: Record<string, unknown> = {}): Promise<string> {
  const { token, ...rest } = claims;
  const ath = claims.ath === undefined && token !== undefined ? await sha256Base64url(token) : claims.ath;
  const payload: Record<string, unknown> = { jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ...rest, ath };
  for (const [name, value] of Object.entries(payload)) if (value === null || value === undefined) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ typ: "dpop+jwt", alg: key.alg, jwk: key.jwk, ...header }).sign(key.privateKey);
}

/** An access token bound to `key` (`cnf.jkt`). */
export const boundToken = (issuerKey: TestKey, key: ProofKey, claims: Record<string, unknown> = {}) => mint(issuerKey, { cnf: { jkt: key.jkt }, ...claims });

/** The request headers of a DPoP presentation. */
export const dpopHeaders = (token: string, proofJwt: string): Record<string, string> => ({ authorization: `DPoP ${token}`, dpop: proofJwt });

type IssuerInput = PortcullisConfig["issuers"][number];

/** baseConfig with the issuer's `dpop` section (default mode `allowed`) and issuer/config overrides. */
export function dpopConfig(fixture: Fixture, dpop: IssuerInput["dpop"] = { mode: "allowed" }, issuer: Partial<IssuerInput> = {}, overrides: Partial<PortcullisConfig> = {}): PortcullisConfig {
  return baseConfig(fixture, {
    issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, algorithms: ["RS256", "ES256", "PS256", "EdDSA"], dpop, ...issuer }],
    ...overrides,
  });
}

/** A gate on `config` (the cloudflare:test env supplies the PORTCULLIS_DPOP Durable Object namespace). */
export const dpopGate = (fixture: Fixture, config: PortcullisConfig, options: Parameters<typeof makeGate>[2] = {}): Gate => makeGate(fixture, config, options);

/** The URL test requests go to (helpers.ts: `https://api.test` + path). */
export const URL_OF = (path: string) => `https://api.test${path}`;

/** A loopback JWKS serving one ES256 issuer key, and a client proof key: what every DPoP test file starts from. */
export async function dpopFixture(proofAlg: AlgName = "ES256"): Promise<{ fixture: Fixture; issuerKey: TestKey; client: ProofKey }> {
  const fixture = new Fixture();
  const issuerKey = await makeKey("ES256");
  await fixture.serveJwks({ keys: [issuerKey.publicJwk] });
  return { fixture, issuerKey, client: await makeProofKey(proofAlg) };
}
