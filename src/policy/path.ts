import { invalidRequest } from "../errors/errors";

/**
 * The canonical request path: the one path that is both matched against route rules and sent to the origin
 * (invariant: authorize exactly what you forward). Input is a WHATWG-parsed `URL.pathname`, which has
 * already resolved literal and `%2e` dot segments and turned `\` into `/`.
 *
 * Rules (RFC 3986 6.2.2): percent-encoded unreserved characters are decoded once, other escapes get
 * upper-case hex; remaining dot segments are removed (5.2.4). Anything still ambiguous between this
 * gate and an origin is refused with 400 rather than guessed: an encoded `/`, `\`, NUL or `%` (double
 * encoding), a segment that decodes to `.`/`..`, `;` path parameters (Tomcat/Spring `..;`) unless
 * allowed, and empty segments (`//`) unless merging is configured.
 */

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** Escapes whose decoded meaning differs between servers. */
const AMBIGUOUS_ESCAPES = new Set(["%2F", "%5C", "%00", "%25"]);

export interface PathOptions {
  semicolons: "reject" | "allow";
  emptySegments: "reject" | "merge";
}

const STRICT: PathOptions = { semicolons: "reject", emptySegments: "reject" };

/** Nothing to decode, merge or refuse: no escape, no `;`, no empty or dot segment. Most paths are like this. */
const ALREADY_CANONICAL = /^(?=\/)(?:\/(?!\.\.?(?:\/|$))[^/%;]+)*\/?$/;

export function canonicalPath(pathname: string, options: PathOptions = STRICT): string {
  return ALREADY_CANONICAL.test(pathname) ? pathname : normalizePath(pathname, options);
}

/** The full rules; `canonicalPath` skips them for paths they would leave unchanged (tested to agree). */
export function normalizePath(pathname: string, options: PathOptions = STRICT): string {
  if (!pathname.startsWith("/")) throw invalidRequest("path_not_absolute");
  if (options.semicolons === "reject" && pathname.includes(";")) throw invalidRequest("path_parameters");
  const decoded = pathname.replace(/%([0-9A-Fa-f]{2})|%/g, (escape: string, hex: string | undefined) => {
    if (hex === undefined) throw invalidRequest("path_bad_escape");
    const upper = `%${hex.toUpperCase()}`;
    if (AMBIGUOUS_ESCAPES.has(upper)) throw invalidRequest("path_ambiguous_escape");
    const char = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : upper;
  });
  const segments = decoded.slice(1).split("/");
  const output: string[] = [];
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === "." || segment === "..") {
      // A dot segment that survived URL parsing was percent-encoded: refuse instead of resolving it.
      throw invalidRequest("path_dot_segment");
    }
    if (segment === "" && !last) {
      if (options.emptySegments === "reject") throw invalidRequest("path_empty_segment");
      return; // merged: `//` becomes `/`, and that merged path is the one forwarded
    }
    output.push(segment);
  });
  return `/${output.join("/")}`;
}
