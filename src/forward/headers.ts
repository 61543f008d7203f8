import type { JWTPayload } from "jose";

/**
 * Identity headers for the origin. The namespace (`header_prefix`) belongs to Portcullis: every client
 * header in it is removed on every path, comparing case-insensitively and treating `_` as `-` (proxies
 * such as nginx and Node servers may fold one into the other), before any verified value is set.
 */

/**
 * Headers that let a client change, after our check, the method or path an origin framework acts on
 * (method overrides; IIS/Symfony `X-Original-URL` and `X-Rewrite-URL`). Never forwarded.
 */
const REROUTING = ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url"];

const fold = (name: string) => name.toLowerCase().replace(/_/g, "-");

export function hasMethodOverride(headers: Headers): boolean {
  return [...headers.keys()].some((name) => REROUTING.slice(0, 3).includes(fold(name)));
}

/** Removes the identity namespace, rerouting headers and the gate's own headers (assertion, shared secret). */
export function stripControlledHeaders(headers: Headers, prefix: string, own: readonly (string | undefined)[] = []): void {
  const names = [...headers.keys()];
  const owned = own.filter((name): name is string => name !== undefined).map(fold);
  for (const name of names) {
    const folded = fold(name);
    if (folded.startsWith(prefix) || REROUTING.includes(folded) || owned.includes(folded)) headers.delete(name);
  }
}

/**
 * A header-safe rendering of a claim value, or undefined to drop it. Printable-ASCII strings, numbers and
 * booleans are sent as they are; anything else (objects, arrays, non-ASCII or control characters) as JSON
 * with every non-printable-ASCII character `\u`-escaped, so no value can inject CR/LF or non-Latin-1 bytes.
 */
export function encodeHeaderValue(value: unknown, maxBytes: number): string | undefined {
  let encoded: string | undefined;
  if (typeof value === "string" && /^[\x20-\x7e]*$/.test(value)) encoded = value;
  else if (typeof value === "number") encoded = Number.isFinite(value) ? String(value) : undefined;
  else if (typeof value === "boolean") encoded = String(value);
  else if (value !== undefined && value !== null) {
    encoded = JSON.stringify(value)?.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }
  if (encoded === undefined || encoded.length > maxBytes) return undefined;
  return encoded.trim() === encoded ? encoded : JSON.stringify(encoded);
}

/** Reads a dotted claim path through own properties only (no `__proto__`/`constructor` traversal). */
export function claimAt(claims: JWTPayload, path: string): unknown {
  let current: unknown = claims;
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null || Array.isArray(current) || !Object.hasOwn(current, part)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
