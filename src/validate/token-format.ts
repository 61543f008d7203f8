import type { IssuerConfig } from "../config/schema";

/**
 * Local format checks for provider access tokens: a token the provider could never have issued is refused
 * (401 `token_format_invalid`) without costing an upstream call, so a flood of made-up tokens stays local.
 * Only formats the provider documents are checked; a prefix with no known format (an operator's own
 * `token_prefixes`) passes untouched.
 *
 * - GitHub classic tokens (`gho_ ghu_ ghp_ ghs_ ghr_`, github.blog 2021-04-05 "Behind GitHub's new
 *   authentication token formats"): the prefix, 30 random base62 characters, then the CRC-32 of those 30
 *   characters in base62 (`0-9A-Za-z`), zero-padded to 6. Installation tokens (`ghs_`) may also be the
 *   stateless `ghs_<app id>_<JWT>` form (GitHub changelog 2026-05-15).
 * - GitHub fine-grained tokens (`github_pat_`): no published checksum; charset and length (GitHub: plan for
 *   tokens up to 255 characters).
 * - Google (`ya29.`): base64url characters and dots (Google pads with trailing dots), at most 2048 bytes.
 */

type Flavor = NonNullable<IssuerConfig["introspection"]>["flavor"];
type Check = (token: string) => boolean;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CLASSIC = /^gh[opusr]_([A-Za-z0-9]{30})([A-Za-z0-9]{6})$/;
const STATELESS_INSTALLATION = /^ghs_[0-9]{1,20}_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Prefix -> format, per flavor; the first matching prefix decides. */
const FORMATS: Partial<Record<Flavor, readonly (readonly [prefix: string, check: Check])[]>> = {
  github: [
    ["github_pat_", (token) => /^github_pat_[A-Za-z0-9_]{36,244}$/.test(token)],
    ["ghs_", (token) => hasGithubChecksum(token) || (token.length <= 2_048 && STATELESS_INSTALLATION.test(token))],
    ...(["gho_", "ghu_", "ghp_", "ghr_"] as const).map((prefix) => [prefix, hasGithubChecksum] as const),
  ],
  google: [["ya29.", (token) => token.length <= 2_048 && /^ya29\.[A-Za-z0-9._-]{20,}$/.test(token)]],
};

/** False only when the token starts with a prefix whose documented format it does not have. */
export function hasProviderFormat(flavor: Flavor, token: string): boolean {
  const rule = FORMATS[flavor]?.find(([prefix]) => token.startsWith(prefix));
  return rule === undefined || rule[1](token);
}

/** A GitHub classic token whose last six characters are the base62 CRC-32 of the 30 before them. */
export function hasGithubChecksum(token: string): boolean {
  const match = CLASSIC.exec(token);
  return match !== null && base62Checksum(match[1]!) === match[2];
}

/** CRC-32 (IEEE, as zlib computes it) of ASCII text, in six base62 digits. */
export function base62Checksum(text: string): string {
  let crc = ~0;
  for (let i = 0; i < text.length; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]!;
  let value = ~crc >>> 0;
  let digits = "";
  for (let i = 0; i < 6; i++, value = Math.floor(value / 62)) digits = BASE62[value % 62] + digits;
  return digits;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
