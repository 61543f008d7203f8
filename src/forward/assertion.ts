import { calculateJwkThumbprint, CompactSign, exportJWK, importJWK, type JWK } from "jose";
import type { ResolvedConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { SecretKeyRings } from "../lib/secret-keys";
import { ASSERTION_TYP, headersDigest } from "../origin/verify-assertion";

/**
 * The signed origin assertion: a short-lived JWT minted per forwarded request, bound to that request
 * (method, URL, the host the gate matched, the identity headers set, and the client's `Content-Digest` when
 * present), so an origin can prove a request came through this gate and was not altered or replayed
 * elsewhere. The origin checks it with `verifyAssertion` (src/origin/verify-assertion.ts).
 */

export type AssertionConfig = NonNullable<ResolvedConfig["forward"]["assertion"]>;

interface SigningKey {
  kid: string;
  alg: "EdDSA" | "ES256";
  key: CryptoKey;
}

interface KeyRing {
  signer: SigningKey;
  /** Public JWKs of every configured key: the current one and any being rotated in or out. */
  publicKeys: JWK[];
}

/** Parsed key rings by secret text: the secret is read per request (it may change), parsed once. */
const secrets = new SecretKeyRings<KeyRing>({
  missing: () => new GateError("server_error", "assertion_key_missing"),
  invalid: () => new GateError("server_error", "assertion_key_invalid"),
});

/** The signing key ring in the `signing_keys` secret: the first key signs, all are published. */
export function keyRing(secret: unknown): Promise<KeyRing> {
  return secrets.load(secret, signingRing);
}

async function signingRing(jwks: JWK[]): Promise<KeyRing> {
  if (!jwks.length) throw new Error("no keys");
  const publicKeys = await Promise.all(jwks.map(toPublic));
  const first = jwks[0]!;
  const alg = algorithmOf(first);
  return { signer: { kid: publicKeys[0]!.kid!, alg, key: (await importJWK(first, alg)) as CryptoKey }, publicKeys };
}

function algorithmOf(jwk: JWK): "EdDSA" | "ES256" {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  throw new Error("unsupported assertion key");
}

/** The public half of a private signing JWK, with a `kid` (the RFC 7638 thumbprint when absent). */
async function toPublic(jwk: JWK): Promise<JWK> {
  const alg = algorithmOf(jwk);
  if (typeof jwk.d !== "string") throw new Error("not a private key");
  const { d: _d, key_ops: _ops, ...rest } = jwk;
  const publicJwk = await exportJWK(await importJWK(rest, alg, { extractable: true }));
  const kid = typeof jwk.kid === "string" ? jwk.kid : await calculateJwkThumbprint(publicJwk);
  return { ...publicJwk, kid, alg, use: "sig" };
}

export interface AssertionInput {
  method: string;
  url: URL;
  /** The normalized host the gate matched its rules on (what `X-Forwarded-Host` tells the origin). */
  host: string;
  /** The request headers as forwarded (identity headers already set). */
  headers: Headers;
  headerPrefix: string;
  identity?: { subject?: string; clientId?: string; scopes: ReadonlySet<string>; sender?: { jkt?: string; "x5t#S256"?: string } };
  now: number;
}

export async function mintAssertion(ring: KeyRing, config: AssertionConfig, input: AssertionInput): Promise<string> {
  const names = [...input.headers.keys()].filter((name) => name.startsWith(input.headerPrefix)).sort();
  const iat = Math.floor(input.now / 1000);
  const contentDigest = input.headers.get("content-digest");
  const claims: Record<string, unknown> = {
    htm: input.method,
    htu: input.url.href,
    host: input.host,
    // The identity namespace too: a verifier set up with another prefix would not see the headers `hdrs` covers.
    hpx: input.headerPrefix,
    hdrs: names,
    hdh: await headersDigest(names, input.headers),
    ...(contentDigest ? { cdg: contentDigest } : {}),
    ...(input.identity?.subject ? { sub: input.identity.subject } : {}),
    ...(input.identity?.clientId ? { client_id: input.identity.clientId } : {}),
    ...(input.identity ? { scope: [...input.identity.scopes].join(" ") } : {}),
    // Not `cnf`: the assertion itself is not sender-constrained; this says how the client's token was.
    ...(input.identity?.sender ? { sender: input.identity.sender } : {}),
  };
  // The registered claims last, in this order: the claims set SignJWT's setters would build, byte for byte,
  // without pulling jose's claims builder (and its duration parser) into the Worker.
  const payload = { ...claims, iss: config.issuer, aud: config.audience, iat, exp: iat + config.ttl, jti: crypto.randomUUID() };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: ring.signer.alg, kid: ring.signer.kid, typ: ASSERTION_TYP })
    .sign(ring.signer.key);
}
