import type { Scheme } from "../errors/challenge";
import { invalidRequest, invalidToken } from "../errors/errors";
import { extractProof } from "./dpop";

/**
 * RFC 6750 section 2 token extraction. One method per request: the Authorization header (2.1), or, only when
 * enabled, the `access_token` query parameter (2.3). The form-body method (2.2) is not supported because
 * the body is streamed to the origin untouched. With DPoP enabled (`dpop`), also RFC 9449 section 7.1
 * `Authorization: DPoP <token>` with its one `DPoP` proof header (dpop.ts); never from the query.
 */

export interface ExtractOptions {
  maxLength: number;
  allowQuery: boolean;
  /** `|` admits Amazon's tokens, which step outside b64token. */
  extraCharacters?: "" | "|";
  /** Some issuer or rule accepts DPoP: the DPoP scheme is a credential (otherwise another scheme: no token). */
  dpop?: boolean;
}

export interface BearerToken {
  token: string;
  source: "header" | "query";
  /** Present when the token came with the DPoP scheme: its proof JWT (syntax checked, nothing verified). */
  dpopProof?: string;
}

/** The scheme a token was presented with. */
export const schemeOf = (token: BearerToken): Scheme => (token.dpopProof === undefined ? "bearer" : "dpop");

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
  if (header !== null && (options.dpop ? /(^|,)\s*(bearer|dpop)\b/i : /(^|,)\s*bearer\b/i).test(header) && header.includes(",")) throw invalidRequest("multiple_credentials");
  const bearer = header === null ? undefined : schemeCredentials(header, "bearer");
  const dpop = header === null || !options.dpop || bearer !== undefined ? undefined : schemeCredentials(header, "dpop");
  const fromHeader = bearer ?? dpop;
  if (fromHeader !== undefined && queryTokens.length) throw invalidRequest("multiple_methods");
  if (queryTokens.length > 1) throw invalidRequest("multiple_methods");

  if (dpop !== undefined) {
    const token = checkSyntax(dpop, options);
    // RFC 9449 section 7.1: the DPoP scheme comes with exactly one proof.
    return { token, source: "header", dpopProof: extractProof(request.headers, options.maxLength) };
  }
  if (bearer !== undefined) return { token: checkSyntax(bearer, options), source: "header" };
  if (queryTokens.length && options.allowQuery) return { token: checkSyntax(queryTokens[0] ?? "", options), source: "query" };
  return undefined;
}

/**
 * What follows the scheme (`bearer` or `dpop`, any case), or undefined for another scheme. The scheme
 * followed by anything that cannot continue a scheme name but is not exactly one space (a tab, two spaces, a
 * no-break space, a vertical tab) is a credential written wrong: refused, never read as "no token". Read as
 * no token, it would pass a public or optional rule anonymously, and an origin that parses whitespace
 * leniently (authorization = forward) would take the token the gate never checked.
 */
function schemeCredentials(header: string, scheme: Scheme): string | undefined {
  const length = scheme.length;
  if (header.slice(0, length).toLowerCase() !== scheme) return undefined;
  const next = header.charAt(length);
  if (next === "") return ""; // the scheme alone: a credential without a token (refused by checkSyntax)
  if (TCHAR.test(next)) return undefined;
  if (next !== " ") throw invalidRequest("malformed_credentials");
  return header.slice(length + 1);
}

function checkSyntax(token: string, options: ExtractOptions): string {
  if (token.length > options.maxLength) throw invalidToken("token_too_large");
  if (!(options.extraCharacters === "|" ? B64TOKEN_WITH_PIPE : B64TOKEN).test(token)) throw invalidRequest("malformed_credentials");
  return token;
}
