import type { RouteConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { canonicalSegment, DEFAULT_PATH_POLICY, type PathOptions, type PathPolicy } from "./path";

/**
 * Route rules: host + method list + path pattern -> requirement. Pattern segments are literals, `:name` or
 * `*` (exactly one non-empty segment), or a final `**` (the rest of the path, possibly empty).
 *
 * Precedence, first difference wins: a rule with a `host` beats one without; then segment by segment, a
 * literal beats `:param`/`*`, which beat `**`; then the longer pattern; then a rule naming methods beats
 * one with `*`. Two rules that could match one request and tie on all of that are a configuration error
 * (`findAmbiguities`), so the order of rules in the file never decides. Unmatched requests are denied.
 *
 * A trailing empty segment never changes which rule applies: `/admin` matches `/admin/` too (Express
 * non-strict routing and Spring before 6 serve both alike, so an exact match would let `/admin/` fall to
 * a broader rule), and the patterns `/admin` and `/admin/` are the same. With `suffixMatch`, `/admin.json`
 * is matched like `/admin` unless a rule names `admin.json` itself (see `matchRoute`).
 */

export class RoutePatternError extends Error {
  constructor(
    readonly index: number,
    readonly field: "path" | "host" | "methods",
    message: string,
  ) {
    super(message);
    this.name = "RoutePatternError";
  }
}

type Segment = { kind: "literal"; value: string } | { kind: "one" } | { kind: "rest" };

export interface CompiledRoute {
  index: number;
  name: string;
  methods: ReadonlySet<string> | "any";
  host: string | undefined;
  segments: Segment[];
  rule: RouteConfig;
}

export interface RouteRequest {
  method: string;
  /** Normalized with `normalizeHost`. */
  host: string;
  /** Canonical path. */
  path: string;
}

const RANK = { literal: 0, one: 1, rest: 2 } as const;
const PARAMETER = /^:[A-Za-z_][A-Za-z0-9_]*$/;

/** What `compileRoutes` and `matchRoute` need of the `paths` section (`pathPolicy(config.paths)`). */
export type RouteOptions = Partial<PathPolicy>;

/** Lower case, no trailing dot, no default port: `API.Example.com.:443` -> `api.example.com`. */
export function normalizeHost(host: string, protocol = "https:"): string {
  const match = /^(.*?)(?::(\d+))?$/.exec(host.toLowerCase())!;
  const name = match[1]!.replace(/\.$/, "");
  const port = match[2];
  const defaultPort = protocol === "http:" ? "80" : "443";
  return port && port !== defaultPort ? `${name}:${port}` : name;
}

export function compileRoutes(routes: readonly RouteConfig[], options: RouteOptions = {}): CompiledRoute[] {
  const policy = { ...DEFAULT_PATH_POLICY, ...options };
  const compiled = routes.map((rule, index) => ({
    index,
    name: rule.name ?? `${rule.methods.join(",")} ${rule.host ?? ""}${rule.path}`,
    methods: rule.methods.includes("*") ? ("any" as const) : new Set(rule.methods),
    host: rule.host === undefined ? undefined : normalizeHost(rule.host),
    segments: compilePattern(rule.path, index, policy),
    rule,
  }));
  return compiled.sort(bySpecificity);
}

function compilePattern(path: string, index: number, policy: PathPolicy): Segment[] {
  const parts = path.slice(1).split("/");
  return parts.flatMap((part, i): Segment[] => {
    const last = i === parts.length - 1;
    const problem = (why: string) => new RoutePatternError(index, "path", `segment ${i + 1} ${JSON.stringify(part)} ${why}`);
    if (part === "**") {
      if (!last) throw problem("is allowed only as the last segment");
      return [{ kind: "rest" }];
    }
    if (part === "*" || PARAMETER.test(part)) return [{ kind: "one" }];
    if (part.startsWith(":")) throw problem("is not a parameter name (a letter or _, then letters, digits, _)");
    if (part === "") {
      if (!last) throw problem("is empty: a canonical path never has an empty segment, remove the extra /");
      // `/` is one empty segment; a trailing `/` changes nothing (`/admin/` is `/admin`).
      return i === 0 ? [{ kind: "literal", value: "" }] : [];
    }
    const literal = canonicalLiteral(part, policy);
    if (typeof literal !== "string") throw problem(literal.why);
    if (literal !== part) throw problem(`is not canonical: write ${JSON.stringify(literal)}`);
    return [{ kind: "literal", value: policy.caseInsensitive ? part.toLowerCase() : part }];
  });
}

/** Why a request segment can never equal this literal, per refusal reason of `canonicalSegment`. */
const NEVER_MATCHES: Record<string, string> = {
  path_ambiguous_escape: "can never match: requests with an encoded / \\ NUL % ? or # (or a raw \\ ? #) are refused; remove it",
  path_parameters: 'can never match: ";" is refused while paths.semicolons = "reject" (set it to "allow" if the origin takes ";" literally)',
  path_trailing_dot: 'can never match: a segment ending in "." is refused while paths.trailing_dots = "reject" (set it to "allow" if the origin keeps trailing dots)',
  path_dot_segment: "can never match: dot segments are resolved or refused before matching",
  path_invalid_utf8: "can never match: its escapes are not UTF-8 (write the UTF-8 bytes of the character, upper-case hex)",
  path_bad_escape: "can never match: a % must start an escape %XX",
};

/** The canonical spelling of a pattern literal, or why no request path can ever contain it. */
function canonicalLiteral(part: string, options: PathOptions): string | { why: string } {
  try {
    return canonicalSegment(part, options);
  } catch (error) {
    if (!(error instanceof GateError)) throw error;
    return { why: NEVER_MATCHES[error.reason] ?? `can never match (${error.reason})` };
  }
}

/** A request path's segments for matching, as patterns are compiled: `/` is one empty segment, a trailing one is dropped. */
function pathParts(path: string): string[] {
  if (path === "/") return [""];
  const parts = path.slice(1).split("/");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/** Everything precedence looks at except the method, as a comparable key. */
function shapeOf(route: CompiledRoute): string {
  return `${route.host ?? ""}|${route.segments.map((s) => (s.kind === "literal" ? `L${s.value}` : s.kind === "one" ? "*" : "**")).join("/")}`;
}

function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  if ((a.host === undefined) !== (b.host === undefined)) return a.host === undefined ? 1 : -1;
  const length = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const rank = RANK[a.segments[i]!.kind] - RANK[b.segments[i]!.kind];
    if (rank !== 0) return rank;
  }
  if (a.segments.length !== b.segments.length) {
    // A pattern that ends here beats a longer one whose only further segment is `**`, which can only match
    // nothing where both match: `/admin` is the rule for `/admin` (and `/admin/`), not `/admin/**`.
    const [shorter, longer] = a.segments.length < b.segments.length ? [a, b] : [b, a];
    if (longer.segments.length === shorter.segments.length + 1 && longer.segments.at(-1)!.kind === "rest") return shorter === a ? -1 : 1;
    return b.segments.length - a.segments.length;
  }
  if ((a.methods === "any") !== (b.methods === "any")) return a.methods === "any" ? 1 : -1;
  return a.index - b.index;
}

/**
 * Pairs of rules that could match the same request with equal precedence: same host, the same pattern
 * (parameter names aside) and overlapping methods (`*` overlaps every list; `GET` covers `HEAD`).
 */
export function findAmbiguities(routes: readonly CompiledRoute[]): [CompiledRoute, CompiledRoute][] {
  const pairs: [CompiledRoute, CompiledRoute][] = [];
  for (let i = 0; i < routes.length; i++) {
    for (let j = i + 1; j < routes.length; j++) {
      const a = routes[i]!;
      const b = routes[j]!;
      if (shapeOf(a) !== shapeOf(b) || (a.methods === "any") !== (b.methods === "any")) continue;
      if (a.methods === "any" || b.methods === "any" || [...withHead(a.methods)].some((m) => withHead(b.methods as ReadonlySet<string>).has(m))) {
        // A HEAD rule beside a GET rule is the documented way to treat HEAD apart: not ambiguous.
        const explicitHeadSplit = a.methods !== "any" && b.methods !== "any" && onlyHeadOverlap(a.methods, b.methods);
        if (!explicitHeadSplit) pairs.push(a.index < b.index ? [a, b] : [b, a]);
      }
    }
  }
  return pairs;
}

const withHead = (methods: ReadonlySet<string>) => (methods.has("GET") ? new Set([...methods, "HEAD"]) : methods);
function onlyHeadOverlap(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const direct = [...a].filter((m) => b.has(m));
  return direct.length === 0 && (a.has("HEAD") || b.has("HEAD"));
}

/**
 * The most specific rule for the request, or undefined (the caller denies). HEAD is covered by GET rules
 * (origins answer HEAD with their GET handlers) unless an equally specific rule lists HEAD itself.
 *
 * With `suffixMatch` (origins that route `/admin.json` to `/admin`: Spring MVC suffix pattern matching,
 * Rails formats), a last segment with a `.ext` suffix (a dot after its first character) is matched on its
 * stem (cut at the first dot), unless the best match names the whole segment as a literal (a rule for
 * `openapi.json` itself). The forwarded path is unchanged; only the rule is chosen as the origin would.
 */
export function matchRoute(routes: readonly CompiledRoute[], request: RouteRequest, options: RouteOptions = {}): CompiledRoute | undefined {
  const path = options.caseInsensitive ? request.path.toLowerCase() : request.path;
  const parts = pathParts(path);
  const exact = bestMatch(routes, request, parts);
  if (!options.suffixMatch) return exact;
  const last = parts[parts.length - 1]!;
  const dot = last.indexOf(".", 1);
  if (dot === -1) return exact;
  const named = exact?.segments.length === parts.length && exact.segments[parts.length - 1]?.kind === "literal";
  if (named) return exact;
  return bestMatch(routes, request, [...parts.slice(0, -1), last.slice(0, dot)]);
}

function bestMatch(routes: readonly CompiledRoute[], request: RouteRequest, parts: readonly string[]): CompiledRoute | undefined {
  let viaGet: CompiledRoute | undefined;
  for (const route of routes) {
    if (route.host !== undefined && route.host !== request.host) continue;
    if (!pathMatches(route.segments, parts)) continue;
    const direct = route.methods === "any" || route.methods.has(request.method);
    if (viaGet) {
      // A GET rule matched a HEAD request; only an explicit HEAD rule of the same shape outranks it.
      if (shapeOf(route) !== shapeOf(viaGet)) return viaGet;
      if (direct && route.methods !== "any") return route;
      continue;
    }
    if (direct) return route;
    if (request.method === "HEAD" && route.methods !== "any" && route.methods.has("GET")) viaGet = route;
  }
  return viaGet;
}

/**
 * Where the paths a rule can match lie against the paths under `prefix` (a protected resource's path as
 * segments, `[]` for `/`, literals as the rules are compiled): `inside` when every path it can match is
 * under it, `overlaps` when some may be, `outside` when none can be. Hosts are not compared.
 */
export function patternWithin(route: CompiledRoute, prefix: readonly string[]): "inside" | "overlaps" | "outside" {
  let inside = true;
  for (let i = 0; i < prefix.length; i++) {
    const segment = route.segments[i];
    if (segment === undefined) return "outside";
    if (segment.kind === "rest") return "overlaps";
    if (segment.kind === "one") inside = false;
    else if (segment.value !== prefix[i]) return "outside";
  }
  return inside ? "inside" : "overlaps";
}

function pathMatches(segments: readonly Segment[], parts: readonly string[]): boolean {
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.kind === "rest") return true;
    const part = parts[i];
    if (part === undefined) return false;
    if (segment.kind === "one" ? part === "" : part !== segment.value) return false;
  }
  return parts.length === segments.length;
}
