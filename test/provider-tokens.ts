import { base62Checksum } from "../src/validate/token-format";

/** Provider tokens are format-checked before any call (src/validate/token-format.ts): tests use well-formed ones. */

/** A GitHub classic token: prefix, 30 base62 characters from `seed` (padded), their base62 CRC-32. */
export function githubToken(seed: string, prefix = "gho_"): string {
  const random = seed.replace(/[^A-Za-z0-9]/g, "").padEnd(30, "0").slice(0, 30);
  return `${prefix}${random}${base62Checksum(random)}`;
}

/** A random well-formed GitHub classic token. */
export const randomGithubToken = (prefix = "gho_") => githubToken(randomBase62(30), prefix);

/** A Google access token shape: `ya29.` and base64url characters. */
export const googleToken = (seed: string) => `ya29.${seed.padEnd(24, "-")}`;

export function randomBase62(length: number): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return Array.from(crypto.getRandomValues(new Uint8Array(length)), (byte) => alphabet[byte % 62]).join("");
}
