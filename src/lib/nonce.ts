import { base64url } from "jose";
import { BoundedMap } from "./bounded-map";

/**
 * Stateless nonces: a nonce names a time window and carries an HMAC-SHA-256 (WebCrypto) of that window and
 * a context, under a secret. Every isolate holding the secret issues the same nonce for a window and checks
 * any other's without shared state or a round trip. Accepted from its own window and the next, so a nonce
 * lives between one and two `lifetime`s.
 */

/** HMAC keys by secret text (rotations come and go; a flood of them cannot grow this). */
const keys = new BoundedMap<string, Promise<CryptoKey>>(16);

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

const windowOf = (now: number, lifetime: number) => Math.floor(now / 1000 / lifetime);

async function nonceFor(secret: string, context: string, window: number): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), new TextEncoder().encode(`${context}\n${window}`));
  // 128 bits of MAC: unguessable; the window in clear so the check needs one HMAC.
  return `${window.toString(36)}.${base64url.encode(new Uint8Array(mac).slice(0, 16))}`;
}

/** The nonce to hand out now. */
export function issueNonce(secret: string, context: string, lifetime: number, now: number): Promise<string> {
  return nonceFor(secret, context, windowOf(now, lifetime));
}

/** Whether `nonce` was issued under `secret` for `context` in this window or the one before. */
export async function checkNonce(secret: string, context: string, lifetime: number, now: number, nonce: unknown): Promise<boolean> {
  if (typeof nonce !== "string" || nonce.length > 64) return false;
  const match = /^([0-9a-z]{1,12})\.[A-Za-z0-9_-]{22}$/.exec(nonce);
  if (!match) return false;
  const window = Number.parseInt(match[1]!, 36);
  const current = windowOf(now, lifetime);
  if (window !== current && window !== current - 1) return false;
  const expected = await nonceFor(secret, context, window);
  return timingSafeEqual(expected, nonce);
}

function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
