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
const SCHEME = /^bearer(?: |$)/i;

/** Returns the presented token, `undefined` when none was presented, or throws a 400/401 GateError. */
export function extractBearer(request: Request, options: ExtractOptions, url?: URL): BearerToken | undefined {
  const header = request.headers.get("authorization");
  const search = url ? url.search : new URL(request.url).search;
  // No query, no query token: most requests skip building search parameters.
  const queryTokens = search === "" ? [] : new URLSearchParams(search).getAll("access_token");

  // Two Authorization headers arrive joined by ", " in workerd: two credentials, not one token.
  if (header !== null && /(^|,)\s*bearer\b/i.test(header) && header.includes(",")) throw invalidRequest("multiple_credentials");
  const fromHeader = header !== null && SCHEME.test(header) ? header.slice(7) : undefined;
  if (fromHeader !== undefined && queryTokens.length) throw invalidRequest("multiple_methods");
  if (queryTokens.length > 1) throw invalidRequest("multiple_methods");

  if (fromHeader !== undefined) return { token: checkSyntax(fromHeader, options), source: "header" };
  if (queryTokens.length && options.allowQuery) return { token: checkSyntax(queryTokens[0] ?? "", options), source: "query" };
  return undefined;
}

function checkSyntax(token: string, options: ExtractOptions): string {
  if (token.length > options.maxLength) throw invalidToken("token_too_large");
  if (!(options.extraCharacters === "|" ? B64TOKEN_WITH_PIPE : B64TOKEN).test(token)) throw invalidRequest("malformed_credentials");
  return token;
}
