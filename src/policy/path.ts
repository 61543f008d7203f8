import type { ResolvedConfig } from "../config/schema";
import { invalidRequest } from "../errors/errors";

/**
 * The canonical request path: the one path that is both matched against route rules and sent to the origin
 * (invariant: authorize exactly what you forward). Input is a WHATWG-parsed `URL.pathname`, which has
 * already resolved literal and `%2e` dot segments and turned `\` into `/`.
 *
 * The canonical form is injective on the decoded path: every decoded character has exactly one spelling,
 * so two requests an origin decodes alike are matched alike (`/v1/items%3Apurge` is `/v1/items:purge`).
 * A character is written raw when it is printable ASCII that the WHATWG parser leaves raw in a path
 * (`RAW_CHARACTER`), and as upper-case `%XX` of its UTF-8 bytes otherwise. Escapes of raw characters are
 * decoded; raw characters outside that set are treated as their escapes (what the URL parser makes of them).
 *
 * Anything an origin could read differently is refused with 400 rather than guessed: an escaped `/` `\`
 * NUL `%` `?` `#` (a decoding origin would see a separator, double encoding or a query/fragment), escapes
 * that are not UTF-8 (overlong `%C0%AF` and other tricks), a segment that decodes to `.`/`..`, `;` path
 * parameters (Tomcat/Spring `..;`) unless allowed, empty segments (`//`) unless merging is configured, and,
 * unless allowed (`trailingDots`), what Windows reads as another file name: segments ending in `.` or a space
 * (IIS, Tomcat on Windows and some Java servers strip them: `/admin.` and `/admin%20` reach `/admin`) and
 * NTFS stream types (`secret.pdf::$DATA` is `secret.pdf`, CVE-2017-12615; `:$` in a segment is refused).
 */

export interface PathOptions {
  semicolons: "reject" | "allow";
  emptySegments: "reject" | "merge";
  trailingDots: "reject" | "allow";
}

/** Everything the `paths` section says about canonicalization and matching, for the gate, explain and config checks. */
export interface PathPolicy extends PathOptions {
  caseInsensitive: boolean;
  suffixMatch: boolean;
}

export function pathPolicy(paths: ResolvedConfig["paths"]): PathPolicy {
  return {
    semicolons: paths.semicolons,
    emptySegments: paths.empty_segments,
    trailingDots: paths.trailing_dots,
    caseInsensitive: paths.case_insensitive,
    suffixMatch: paths.suffix_match,
  };
}

const STRICT: PathOptions = { semicolons: "reject", emptySegments: "reject", trailingDots: "reject" };
/** The `paths` defaults, for callers without a configuration (tests, tools). */
export const DEFAULT_PATH_POLICY: PathPolicy = { ...STRICT, caseInsensitive: false, suffixMatch: false };

/**
 * Printable ASCII the WHATWG URL parser leaves raw in a path, minus `%` `/` `\` (escape syntax and
 * separators): unreserved, sub-delims, `:` `@`, and `[ ] |`. Not `^`: the current URL standard, and
 * workerd's parser, escape it in paths, so a raw `^` would not reach the origin as the gate matched it.
 */
const RAW_CHARACTER = /^[!$&'()*+,\-.0-9:;=@A-Z[\]_a-z|~]$/;
/** Characters a decoding origin would read as a separator, an escape, a query, a fragment or a string end. */
const AMBIGUOUS_CHARACTERS = new Set(["/", "\\", "\0", "%", "?", "#"]);

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Nothing to decode, encode, merge or refuse: only raw characters other than `;`, no empty segment but a
 * trailing one, no segment ending in `.` (which also excludes dot segments), no `:$`. Most paths are like this.
 */
const ALREADY_CANONICAL = /^(?=\/)(?!.*:\$)(?:\/[!$&'()*+,\-.0-9:=@A-Z[\]_a-z|~]*[!$&'()*+,\-0-9:=@A-Z[\]_a-z|~])*\/?$/;

/** One segment `ALREADY_CANONICAL` would accept: what `canonicalSegment` returns unchanged under any options. */
const CANONICAL_SEGMENT = /^(?!.*:\$)[!$&'()*+,\-.0-9:=@A-Z[\]_a-z|~]*[!$&'()*+,\-0-9:=@A-Z[\]_a-z|~]$/;

export function canonicalPath(pathname: string, options: Partial<PathOptions> = STRICT): string {
  return ALREADY_CANONICAL.test(pathname) ? pathname : normalizePath(pathname, options);
}

/** The full rules; `canonicalPath` skips them for paths they would leave unchanged (tested to agree). */
export function normalizePath(pathname: string, options: Partial<PathOptions> = STRICT): string {
  const rules = { ...STRICT, ...options };
  if (!pathname.startsWith("/")) throw invalidRequest("path_not_absolute");
  const segments = pathname.slice(1).split("/");
  const output: string[] = [];
  segments.forEach((segment, i) => {
    if (segment === "" && i < segments.length - 1) {
      if (rules.emptySegments === "reject") throw invalidRequest("path_empty_segment");
      return; // merged: `//` becomes `/`, and that merged path is the one forwarded
    }
    output.push(canonicalSegment(segment, rules));
  });
  return `/${output.join("/")}`;
}

/**
 * One segment (between two `/`) in canonical form, or a GateError 400 with the reason: decoded, then each
 * character spelled once. The single truth for request paths and for route patterns (a pattern literal
 * that differs from its canonical form can never match).
 */
export function canonicalSegment(segment: string, options: PathOptions = STRICT): string {
  if (CANONICAL_SEGMENT.test(segment)) return segment;
  let canonical = "";
  for (const char of decodeSegment(segment)) canonical += spell(char, options);
  if (canonical === "." || canonical === "..") {
    // A dot segment that survived URL parsing was percent-encoded: refuse instead of resolving it.
    throw invalidRequest("path_dot_segment");
  }
  if (options.trailingDots === "reject") {
    if (canonical.endsWith(".")) throw invalidRequest("path_trailing_dot");
    if (canonical.endsWith("%20")) throw invalidRequest("path_trailing_space");
    if (canonical.includes(":$")) throw invalidRequest("path_windows_stream");
  }
  return canonical;
}

/**
 * Under case-insensitive matching (`caseInsensitive`): a canonical path holding a non-ASCII character that has
 * case is refused. The gate folds ASCII only, and origins fold the rest each their own way: Java's
 * `equalsIgnoreCase` and Go's `EqualFold` read the Kelvin sign as `k`, `ſ` as `s` and `İ` as `i`, so
 * `/\u212Aeys` would reach their `/keys` handler past a rule on `/keys`.
 */
export function checkCaseFolding(path: string): void {
  // Only a UTF-8 lead byte (%C2-%F4) can start a non-ASCII character; most paths have none.
  if (!/%[C-F]/.test(path)) return;
  for (const char of decodeURIComponent(path)) {
    if (char.charCodeAt(0) > 0x7f && (char.toLowerCase() !== char || char.toUpperCase() !== char)) throw invalidRequest("path_case_fold");
  }
}

/** The one decision per decoded character: its canonical spelling, or the refusal. */
function spell(char: string, options: PathOptions): string {
  if (RAW_CHARACTER.test(char)) {
    if (char === ";" && options.semicolons === "reject") throw invalidRequest("path_parameters");
    return char;
  }
  if (AMBIGUOUS_CHARACTERS.has(char)) throw invalidRequest("path_ambiguous_escape");
  try {
    return encodeURIComponent(char); // upper-case hex of the UTF-8 bytes
  } catch {
    throw invalidRequest("path_invalid_utf8"); // a lone surrogate (only in a raw string): no UTF-8 spelling
  }
}

/** The segment's text: each maximal run of `%XX` decoded as UTF-8 (strictly), other characters as they are. */
function decodeSegment(segment: string): string {
  return segment.replace(/(?:%[0-9A-Fa-f]{2})+|%/g, (run) => {
    if (run === "%") throw invalidRequest("path_bad_escape");
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
    try {
      // Fatal: overlong forms (`%C0%AF`), surrogates, lone continuation bytes and truncated sequences are refused.
      return UTF8.decode(bytes);
    } catch {
      throw invalidRequest("path_invalid_utf8");
    }
  });
}
