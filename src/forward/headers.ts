/**
 * Identity headers for the origin. The namespace (`header_prefix`) belongs to Portcullis: every client
 * header in it is removed on every path, comparing case-insensitively and treating `_` as `-` (proxies
 * such as nginx and Node servers may fold one into the other), before any verified value is set.
 */

/**
 * Headers that let a client change, after our check, the method or path an origin framework acts on
 * (method overrides; IIS/Symfony `X-Original-URL` and `X-Rewrite-URL`), or that tell an origin which URI a
 * proxy received (nginx `auth_request`'s `X-Original-URI`, Traefik's `X-Forwarded-Uri`, Envoy's
 * `X-Envoy-Original-Path`), which apps written for those proxies trust. Never forwarded.
 */
const REROUTING = ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri", "x-envoy-original-path"];

/**
 * Headers that tell an origin which host, scheme, port or path prefix the client used (RFC 7239 `Forwarded`
 * and the de-facto relatives frameworks honour: Express/Spring/Django/Rails/ASP.NET `X-Forwarded-*`, IIS
 * `X-Original-Host`, `X-Host`, WSGI `X-Url-Scheme`, Rack `X-Forwarded-Ssl`, Microsoft `Front-End-Https`).
 * A client copy would let it choose the host an origin builds links, redirects or tenant lookups from; the
 * gate removes them all and sets `X-Forwarded-Host`/`X-Forwarded-Proto` itself (`setForwardedHost`).
 */
const FORWARDED_HOST = new Set([
  "forwarded",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-protocol",
  "x-forwarded-scheme",
  "x-forwarded-ssl",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-forwarded-server",
  "x-original-host",
  "x-host",
  "x-url-scheme",
  "front-end-https",
]);

/** RFC 9110 7.6.1 connection-specific headers (plus any the client lists in `Connection`); `upgrade` stays for WebSockets. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"]);

const fold = (name: string) => {
  const lower = name.toLowerCase();
  return lower.includes("_") ? lower.replace(/_/g, "-") : lower;
};

export function hasMethodOverride(headers: Headers): boolean {
  return [...headers.keys()].some((name) => REROUTING.slice(0, 3).includes(fold(name)));
}

/**
 * Why a header cannot carry a value the gate sets itself (assertion, shared secret), or undefined when it
 * can: a credentials header, one the HTTP layer owns, or one the gate strips or sets for other meanings, so
 * the value would be lost, overwritten or read as something else by the origin.
 */
export function reservedHeaderReason(name: string): string | undefined {
  const folded = fold(name);
  if (CREDENTIALS.includes(folded)) return "is a credentials header";
  if (HOP_BY_HOP.has(folded) || FRAMING.includes(folded)) return "is a hop-by-hop or message-framing header";
  if (folded.startsWith("content-")) return "is a content header: it tells the origin how to read the body";
  if (REROUTING.includes(folded) || FORWARDED_HOST.has(folded)) return "is a header the gate strips or sets for another purpose";
  if (CLIENT_ADDRESS.has(folded)) return "is a header origins read the client's address from";
  return undefined;
}

const CREDENTIALS = ["authorization", "proxy-authorization", "cookie", "dpop"];
/** Besides the hop-by-hop headers: what the HTTP layer owns. */
const FRAMING = ["upgrade", "host", "content-length"];

/** Headers origins and proxies take the client's address from (IP allow-lists, rate limits, audit logs). */
const CLIENT_ADDRESS = new Set(["x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip", "cf-connecting-ipv6", "x-client-ip", "x-cluster-client-ip"]);

/**
 * Header names a `header_prefix` must not be the start of: the identity namespace is stripped from every
 * client request and filled from verified claims, so a prefix such as `x-` or `content-` would strip what
 * the origin needs from the client (`X-Request-Id`, `Content-Type`) and let a claim header take a name
 * the origin reads for something else (`X-HTTP-Method-Override`, `X-Forwarded-Prefix`, `X-Real-IP`).
 */
const WELL_KNOWN = [
  ...REROUTING,
  ...FORWARDED_HOST,
  ...HOP_BY_HOP,
  ...CLIENT_ADDRESS,
  ...CREDENTIALS,
  ...FRAMING,
  "content-type",
  "content-encoding",
  "accept",
  "origin",
  "user-agent",
  "access-control-request-method",
  "sec-fetch-site",
  "cf-ray",
  "mcp-session-id",
  "mcp-protocol-version",
  "x-request-id",
  "traceparent",
];

/** The first well-known header a `header_prefix` would claim, or undefined when it claims none. */
export function headerPrefixConflict(prefix: string): string | undefined {
  const folded = fold(prefix);
  return WELL_KNOWN.find((name) => name.startsWith(folded));
}

export interface StripOptions {
  /** The gate's own headers (assertion, shared secret): never taken from a client. */
  own?: readonly (string | undefined)[];
  /** Remove `Authorization` and `DPoP` too (`forward.authorization = "strip"`). */
  authorization?: boolean;
}

/**
 * Removes, in one pass over the client's headers: the identity namespace, rerouting headers, forwarded-host
 * headers, the gate's own headers, hop-by-hop headers and (when asked) `Authorization`.
 */
export function stripControlledHeaders(headers: Headers, prefix: string, options: StripOptions = {}): void {
  const owned = (options.own ?? []).filter((name): name is string => name !== undefined).map(fold);
  // Names first (one pass; deleting while iterating a Headers object would skip entries), and the
  // `Connection` list read only when there is one: most requests have none.
  const names = [...headers.keys()];
  const listed = names.includes("connection") ? headers.get("connection")!.split(",").map((name) => name.trim().toLowerCase()) : [];
  const doomed: string[] = [];
  for (const name of names) {
    const folded = fold(name);
    if (
      folded.startsWith(prefix) ||
      REROUTING.includes(folded) ||
      FORWARDED_HOST.has(folded) ||
      owned.includes(folded) ||
      HOP_BY_HOP.has(name) ||
      (name !== "upgrade" && listed.includes(name)) ||
      // The DPoP proof goes with the token it proves (RFC 9449 section 4.1).
      (options.authorization === true && (name === "authorization" || name === "dpop"))
    ) {
      doomed.push(name);
    }
  }
  for (const name of doomed) headers.delete(name);
}

/** Tells the origin the host the gate matched its rules on and the scheme the client used, after stripping. */
export function setForwardedHost(headers: Headers, host: string, protocol: string): void {
  headers.set("x-forwarded-host", host);
  headers.set("x-forwarded-proto", protocol.replace(/:$/, ""));
}

/** The identity headers every verified request gets, after `header_prefix`; `claim_headers` may not reuse them. */
export const BUILT_IN_HEADERS = ["sub", "client-id", "scope", "issuer", "cnf-method", "cnf-jkt", "cnf-x5t-s256"] as const;

/**
 * Identity header kinds. `string`: the built-ins (`sub`, `client-id`, `scope`, `issuer`), whose values are
 * always strings. `claim`: a `claim_headers` entry, any JSON value.
 */
export type HeaderKind = "string" | "claim";

/** A string that travels as itself: non-empty printable ASCII, no space at either end, not starting with `"`. */
const PLAIN = /^(?!")[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** Text a reader takes for JSON: a string, object or array opening, a JSON number, `true`, `false`, `null`. */
const JSON_TEXT = /^(?:["{[]|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$|(?:true|false|null)$)/;

/**
 * A header-safe, injective rendering of an identity value, or undefined to drop it (not of its kind, not
 * finite, or longer than `maxBytes` once encoded). A plain string (see PLAIN; for a `claim` header also not
 * JSON text) is sent as it is; every other value as JSON with each character outside printable ASCII written
 * `\uXXXX`, so nothing can inject CR/LF or non-Latin-1 bytes. The two forms never overlap (JSON always starts
 * with `"`, `{`, `[` or is a number or literal), so a reader decodes: `string` header -> JSON.parse when it
 * starts with `"`, else the text; `claim` header -> JSON.parse when it matches JSON_TEXT, else the text.
 * Different values thus never share a header value (`1` vs `"1"`, `{"a":1}` the text vs the object).
 */
export function encodeHeaderValue(value: unknown, kind: HeaderKind, maxBytes: number): string | undefined {
  let encoded: string | undefined;
  if (typeof value === "string") encoded = PLAIN.test(value) && (kind === "string" || !JSON_TEXT.test(value)) ? value : asciiJson(value);
  else if (kind === "string" || value === undefined || (typeof value === "number" && !Number.isFinite(value))) encoded = undefined;
  else encoded = asciiJson(value);
  return encoded !== undefined && encoded.length <= maxBytes ? encoded : undefined;
}

/** JSON with every character outside printable ASCII as `\uXXXX` (JSON.parse gives the value back). */
function asciiJson(value: unknown): string | undefined {
  return JSON.stringify(value)?.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
