import { invalidRequest, invalidToken } from "../errors/errors";

/**
 * RFC 6750 section 2 token extraction. One method per request: the Authorization header (2.1), or, only when
 * enabled, the `access_token` query parameter (2.3). The form-body method (2.2) is not supported because
 * the body is streamed to the origin untouched.
 */

export interface ExtractOptions {
  maxLength: number;
  allowQuery: boolean;
  /** `|` admits Amazon's tokens, which step outside b64token. */
  extraCharacters?: "" | "|";
}

export interface BearerToken {
  token: string;
  source: "header" | "query";
}

/** `credentials = "Bearer" 1*SP b64token`; we accept exactly one space and no trailing blanks. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const B64TOKEN_WITH_PIPE = /^[A-Za-z0-9\-._~+/|]+=*$/;
/** RFC 7230 `tchar`: a character that continues an auth-scheme name (`Bearerx` is another scheme). */
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Returns the presented token, `undefined` when none was presented, or throws a 400/401 GateError. */
export function extractBearer(request: Pick<Request, "headers" | "url">, options: ExtractOptions, url?: URL): BearerToken | undefined {
  const header = request.headers.get("authorization");
  const search = url ? url.search : new URL(request.url).search;
  // No query, no query token: most requests skip building search parameters.
  const queryTokens = search === "" ? [] : new URLSearchParams(search).getAll("access_token");

  // Two Authorization headers arrive joined by ", " in workerd: two credentials, not one token.
  if (header !== null && /(^|,)\s*bearer\b/i.test(header) && header.includes(",")) throw invalidRequest("multiple_credentials");
  const fromHeader = header === null ? undefined : bearerCredentials(header);
  if (fromHeader !== undefined && queryTokens.length) throw invalidRequest("multiple_methods");
  if (queryTokens.length > 1) throw invalidRequest("multiple_methods");

  if (fromHeader !== undefined) return { token: checkSyntax(fromHeader, options), source: "header" };
  if (queryTokens.length && options.allowQuery) return { token: checkSyntax(queryTokens[0] ?? "", options), source: "query" };
  return undefined;
}

/**
 * What follows the Bearer scheme, or undefined for another scheme. `Bearer` followed by anything that cannot
 * continue a scheme name but is not exactly one space (a tab, two spaces, a no-break space, a vertical tab) is
 * a Bearer credential written wrong: refused, never read as "no token". Read as no token, it would pass a
 * public or optional rule anonymously, and an origin that parses whitespace leniently (authorization =
 * forward) would take the token the gate never checked.
 */
function bearerCredentials(header: string): string | undefined {
  if (header.slice(0, 6).toLowerCase() !== "bearer") return undefined;
  const next = header.charAt(6);
  if (next === "") return ""; // `Bearer` alone: a credential without a token (refused by checkSyntax)
  if (TCHAR.test(next)) return undefined;
  if (next !== " ") throw invalidRequest("malformed_credentials");
  return header.slice(7);
}

function checkSyntax(token: string, options: ExtractOptions): string {
  if (token.length > options.maxLength) throw invalidToken("token_too_large");
  if (!(options.extraCharacters === "|" ? B64TOKEN_WITH_PIPE : B64TOKEN).test(token)) throw invalidRequest("malformed_credentials");
  return token;
}
