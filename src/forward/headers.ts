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

/** RFC 9110 7.6.1 connection-specific headers (plus any the client lists in `Connection`); `upgrade` stays for WebSockets. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"]);

const fold = (name: string) => {
  const lower = name.toLowerCase();
  return lower.includes("_") ? lower.replace(/_/g, "-") : lower;
};

export function hasMethodOverride(headers: Headers): boolean {
  return [...headers.keys()].some((name) => REROUTING.slice(0, 3).includes(fold(name)));
}

export interface StripOptions {
  /** The gate's own headers (assertion, shared secret): never taken from a client. */
  own?: readonly (string | undefined)[];
  /** Remove `Authorization` too (`forward.authorization = "strip"`). */
  authorization?: boolean;
}

/**
 * Removes, in one pass over the client's headers: the identity namespace, rerouting headers, the gate's own
 * headers, hop-by-hop headers and (when asked) `Authorization`.
 */
export function stripControlledHeaders(headers: Headers, prefix: string, options: StripOptions = {}): void {
  const owned = (options.own ?? []).filter((name): name is string => name !== undefined).map(fold);
  const connection = headers.get("connection");
  const listed = connection === null ? [] : connection.split(",").map((name) => name.trim().toLowerCase());
  const doomed: string[] = [];
  for (const name of headers.keys()) {
    const folded = fold(name);
    if (
      folded.startsWith(prefix) ||
      REROUTING.includes(folded) ||
      owned.includes(folded) ||
      HOP_BY_HOP.has(name) ||
      (name !== "upgrade" && listed.includes(name)) ||
      (options.authorization === true && name === "authorization")
    ) {
      doomed.push(name);
    }
  }
  // Collected first: deleting while iterating a Headers object skips entries.
  for (const name of doomed) headers.delete(name);
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
