/**
 * SHA-256 digests of text, one function per encoding in use. Every digest the gate makes is made here,
 * except the assertion's header digest: `headersDigest` in origin/verify-assertion.ts defines that binding
 * for both sides (the gate mints with it, the origin checks with it), and that file ships standalone
 * (`portcullis/origin`, jose its only import), so it keeps its own SHA-256, base64url by jose's encoder.
 */

import { base64url } from "jose";

const UTF8 = new TextEncoder();
const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", UTF8.encode(text)));

/** Lower-case hex: KV names and the HMAC secret fingerprint (stored names, so their bytes never change). */
export async function sha256Hex(text: string): Promise<string> {
  return Array.from(await digest(text), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Padded standard base64: the verified-token cache key (memory only; the encoding it always had). */
export async function sha256Base64(text: string): Promise<string> {
  let binary = "";
  for (const byte of await digest(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}


/** Unpadded base64url (jose's encoder): DPoP `ath` (RFC 9449 section 4.2), the hash of the access token. */
export async function sha256Base64url(text: string): Promise<string> {
  return base64url.encode(await digest(text));
}

/**
 * A hex SHA-256 fingerprint (Cloudflare's `certFingerprintSHA256`, either case) as unpadded base64url, the
 * encoding of RFC 8705 `x5t#S256`; undefined when it is not 64 hex digits.
 */
export function hexToBase64url(hex: string): string | undefined {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return undefined;
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return base64url.encode(bytes);
}
