import type { RouteConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import { canonicalSegment, DEFAULT_PATH_POLICY, type PathOptions, type PathPolicy } from "./path";

/**
 * Route rules: host + method list + path pattern -> requirement. Pattern segments are literals, `:name` or
 * `*` (exactly one non-empty segment), or a final `**` (the rest of the path, possibly empty).
 *
 * A rule's `host` without a port covers that host on every port (`admin.example.com:8443` too): origins pick
 * the virtual host or tenant by name and ignore the port (Express `req.hostname`, Rails `request.host`, nginx
 * `server_name`), so a port must not move a request from the host's rules to weaker ones.
 *
 * Precedence, first difference wins: a rule with a `host` and port beats one with the host alone, which beats
 * one without; then segment by segment, a literal beats `:param`/`*`, which beat `**`; then the longer
 * pattern; then a rule naming methods beats one with `*`. Two rules that could match one request and tie on
 * all of that are a configuration error (`findAmbiguities`), so the order of rules in the file never decides.
 * Unmatched requests are denied.
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

const NORMAL_HOST = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::(\d+))?$/;

/** Lower case, no trailing dot, no default port: `API.Example.com.:443` -> `api.example.com`. */
export function normalizeHost(host: string, protocol = "https:"): string {
  // Most hosts are already normal (lower case, no trailing dot, no default port): nothing to rewrite.
  const normal = NORMAL_HOST.exec(host);
  if (normal && normal[1] !== (protocol === "http:" ? "80" : "443")) return host;
  const match = /^(.*?)(?::(\d+))?$/.exec(host.toLowerCase())!;
  const name = match[1]!.replace(/\.$/, "");
  const port = match[2];
  const defaultPort = protocol === "http:" ? "80" : "443";
  return port && port !== defaultPort ? `${name}:${port}` : name;
}

/**
 * Compiled tables by rule list, with the policy they were compiled under: validation (config/rules.ts) and
 * the gate compile the same parsed `routes` with the same policy, once each per isolate; the second is a
 * lookup. The tables are never changed after compilation.
 */
const COMPILED = new WeakMap<readonly RouteConfig[], { policy: string; compiled: CompiledRoute[] }>();

export function compileRoutes(routes: readonly RouteConfig[], options: RouteOptions = {}): CompiledRoute[] {
  const policy = { ...DEFAULT_PATH_POLICY, ...options };
  const key = JSON.stringify([policy.semicolons, policy.emptySegments, policy.trailingDots, policy.caseInsensitive, policy.suffixMatch]);
  const known = COMPILED.get(routes);
  if (known?.policy === key) return known.compiled;
  const compiled = compileTable(routes, policy);
  COMPILED.set(routes, { policy: key, compiled });
  return compiled;
}

function compileTable(routes: readonly RouteConfig[], policy: PathPolicy): CompiledRoute[] {
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
  const segments: Segment[] = [];
  for (let i = 0; i < parts.length; i++) {
    const segment = compileSegment(parts[i]!, i, i === parts.length - 1, index, policy);
    if (segment) segments.push(segment);
  }
  return segments;
}

const ONE: Segment = Object.freeze({ kind: "one" });
const REST: Segment = Object.freeze({ kind: "rest" });

/** Pattern segment `i` (0-based) of rule `index`; undefined for a trailing `/`, which changes nothing. */
function compileSegment(part: string, i: number, last: boolean, index: number, policy: PathPolicy): Segment | undefined {
  const problem = (why: string) => new RoutePatternError(index, "path", `segment ${i + 1} ${JSON.stringify(part)} ${why}`);
  if (part === "**") {
    if (!last) throw problem("is allowed only as the last segment");
    return REST;
  }
  if (part === "*" || PARAMETER.test(part)) return ONE;
  if (part.startsWith(":")) throw problem("is not a parameter name (a letter or _, then letters, digits, _)");
  if (part === "") {
    if (!last) throw problem("is empty: a canonical path never has an empty segment, remove the extra /");
    // `/` is one empty segment; a trailing `/` changes nothing (`/admin/` is `/admin`).
    return i === 0 ? { kind: "literal", value: "" } : undefined;
  }
  const literal = canonicalLiteral(part, policy);
  if (typeof literal !== "string") throw problem(literal.why);
  if (literal !== part) throw problem(`is not canonical: write ${JSON.stringify(literal)}`);
  return { kind: "literal", value: policy.caseInsensitive ? part.toLowerCase() : part };
}

/** Why a request segment can never equal this literal, per refusal reason of `canonicalSegment`. */
const NEVER_MATCHES: Record<string, string> = {
  path_ambiguous_escape: "can never match: requests with an encoded / \\ NUL % ? or # (or a raw \\ ? #) are refused; remove it",
  path_parameters: 'can never match: ";" is refused while paths.semicolons = "reject" (set it to "allow" if the origin takes ";" literally)',
  path_trailing_dot: 'can never match: a segment ending in "." is refused while paths.trailing_dots = "reject" (set it to "allow" if the origin keeps trailing dots)',
  path_trailing_space: 'can never match: a segment ending in a space is refused while paths.trailing_dots = "reject" (set it to "allow" if the origin keeps them)',
  path_windows_stream: 'can never match: ":$" (an NTFS stream type) is refused while paths.trailing_dots = "reject" (set it to "allow" if the origin is not on Windows)',
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
/** A pattern's segments as a comparable key (parameter names aside). */
const patternKey = (segments: readonly Segment[]) => segments.map((s) => (s.kind === "literal" ? `L${s.value}` : s.kind === "one" ? "*" : "**")).join("/");

function shapeOf(route: CompiledRoute): string {
  return `${route.host ?? ""}|${patternKey(route.segments)}`;
}

/** 0: host and port; 1: host alone (any port); 2: no host. */
const hostRank = (route: CompiledRoute) => (route.host === undefined ? 2 : route.host.includes(":") ? 0 : 1);

/** Whether a rule's (normalized) host covers the request's: the same, or the same name on another port. */
const coversHost = (rule: string, request: string) => rule === request || (!rule.includes(":") && request.startsWith(rule) && request.charAt(rule.length) === ":");

function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  if (hostRank(a) !== hostRank(b)) return hostRank(a) - hostRank(b);
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
 * (parameter names aside) and overlapping methods (`*` overlaps every list; `GET` covers `HEAD`). Only rules
 * of one shape (host + pattern) and one kind of method list can tie, so they are grouped by that key and
 * compared within their group: linear in the table, not pairwise over it. Pairs come in the order of a
 * pairwise scan over `routes` (by the first rule's place, then the second's).
 */
export function findAmbiguities(routes: readonly CompiledRoute[]): [CompiledRoute, CompiledRoute][] {
  const groups = new Map<string, number[]>();
  routes.forEach((route, position) => {
    const key = `${route.methods === "any" ? "any" : "listed"}|${shapeOf(route)}`;
    const group = groups.get(key);
    if (group) group.push(position);
    else groups.set(key, [position]);
  });
  const found: [number, number][] = [];
  for (const group of groups.values()) {
    for (let i = 0; i < group.length; i++) {
      for (let j = i + 1; j < group.length; j++) {
        if (tie(routes[group[i]!]!, routes[group[j]!]!)) found.push([group[i]!, group[j]!]);
      }
    }
  }
  found.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return found.map(([i, j]) => {
    const a = routes[i]!;
    const b = routes[j]!;
    return a.index < b.index ? [a, b] : [b, a];
  });
}

/**
 * Pairs of a rule that names HEAD but not GET and a rule of the same shape (host + pattern) that covers GET
 * (by name or `*`): the HEAD rule decides HEAD requests, while most origins (Hono, Express, Go, Rails) answer
 * HEAD with their GET handler.
 */
export function headBesideGet(routes: readonly CompiledRoute[]): [head: CompiledRoute, get: CompiledRoute][] {
  const getByShape = new Map<string, CompiledRoute>();
  for (const route of routes) {
    const shape = shapeOf(route);
    if (!getByShape.has(shape) && (route.methods === "any" || route.methods.has("GET"))) getByShape.set(shape, route);
  }
  return routes.flatMap((head) => {
    if (head.methods === "any" || !head.methods.has("HEAD") || head.methods.has("GET")) return [];
    const get = getByShape.get(shapeOf(head));
    return get ? [[head, get] as [CompiledRoute, CompiledRoute]] : [];
  });
}

/** Two rules of one shape and one kind of method list: whether their methods overlap. */
function tie(a: CompiledRoute, b: CompiledRoute): boolean {
  if (a.methods === "any" || b.methods === "any") return true;
  if (![...withHead(a.methods)].some((m) => withHead(b.methods as ReadonlySet<string>).has(m))) return false;
  // A HEAD rule beside a GET rule is the documented way to treat HEAD apart: not ambiguous.
  return !onlyHeadOverlap(a.methods, b.methods);
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
  if (exact && path.length > 1 && path.endsWith("/")) checkTrailingSlash(routes, request, parts, exact);
  if (!options.suffixMatch) return exact;
  const last = parts[parts.length - 1]!;
  const dot = last.indexOf(".", 1);
  if (dot === -1) return exact;
  const named = exact?.segments.length === parts.length && exact.segments[parts.length - 1]?.kind === "literal";
  if (named) return exact;
  return bestMatch(routes, request, [...parts.slice(0, -1), last.slice(0, dot)]);
}

/**
 * `/admin/` is matched like `/admin` (Express non-strict routing and Spring before 6 serve both alike), but
 * strict routers (Hono, Go's ServeMux, nginx `location /admin/`) send it into the `/admin/*` handler. So when
 * the rule for `/admin` and the rule for `/admin/**` (the same pattern followed by `**`) both apply and are
 * different rules, the origin could act under either: refused (400) rather than guessed.
 */
function checkTrailingSlash(routes: readonly CompiledRoute[], request: RouteRequest, parts: readonly string[], exact: CompiledRoute): void {
  const subtree = bestMatch(routes, request, [...parts, ""]);
  if (!subtree || subtree === exact) return;
  if (subtree.segments.at(-1)?.kind !== "rest" || patternKey(subtree.segments.slice(0, -1)) !== patternKey(exact.segments)) return;
  throw new GateError("invalid_request", "path_trailing_slash_ambiguous");
}

function bestMatch(routes: readonly CompiledRoute[], request: RouteRequest, parts: readonly string[]): CompiledRoute | undefined {
  const index = routeIndex(routes);
  let viaGet: number | undefined;
  // The candidates (rules whose pattern matches the path) in precedence order: the first that applies wins.
  for (const position of candidates(index.root, parts)) {
    const route = routes[position]!;
    if (route.host !== undefined && !coversHost(route.host, request.host)) continue;
    const direct = route.methods === "any" || route.methods.has(request.method);
    if (viaGet !== undefined) {
      // A GET rule matched a HEAD request; only an explicit HEAD rule of the same shape outranks it.
      if (index.shapes[position] !== index.shapes[viaGet]) return routes[viaGet];
      if (direct && route.methods !== "any") return route;
      continue;
    }
    if (direct) return route;
    if (request.method === "HEAD" && route.methods !== "any" && route.methods.has("GET")) viaGet = position;
  }
  return viaGet === undefined ? undefined : routes[viaGet];
}

/**
 * The rule table as a trie of pattern segments, so that a request is compared only with the rules whose
 * pattern can match its path (a linear scan compared it with every rule). Rules are kept by their place in
 * the precedence-sorted table; `candidates` returns those places in order, and `bestMatch` walks them
 * exactly as it would walk the whole table (rules that cannot match were skipped there anyway).
 */
interface TrieNode {
  literals: Map<string, TrieNode>;
  one: TrieNode | undefined;
  /** Patterns that end here (the path has no further segment). */
  ends: number[];
  /** Patterns whose `**` starts here (any rest of the path, possibly empty). */
  rests: number[];
}

interface RouteIndex {
  root: TrieNode;
  /** `shapeOf` of each rule, by place. */
  shapes: string[];
}

const trieNode = (): TrieNode => ({ literals: new Map(), one: undefined, ends: [], rests: [] });

// Built once per compiled table (compileRoutes returns it sorted; nothing changes it afterwards).
const INDEXES = new WeakMap<readonly CompiledRoute[], RouteIndex>();

function routeIndex(routes: readonly CompiledRoute[]): RouteIndex {
  let index = INDEXES.get(routes);
  if (!index) {
    index = buildIndex(routes);
    INDEXES.set(routes, index);
  }
  return index;
}

function buildIndex(routes: readonly CompiledRoute[]): RouteIndex {
  const root = trieNode();
  routes.forEach((route, position) => {
    let node = root;
    for (const segment of route.segments) {
      if (segment.kind === "rest") {
        node.rests.push(position);
        return;
      }
      if (segment.kind === "one") node = node.one ??= trieNode();
      else {
        let next = node.literals.get(segment.value);
        if (!next) node.literals.set(segment.value, (next = trieNode()));
        node = next;
      }
    }
    node.ends.push(position);
  });
  return { root, shapes: routes.map(shapeOf) };
}

/** Places of the rules whose pattern matches `parts`, ascending (the table's precedence order). */
function candidates(root: TrieNode, parts: readonly string[]): number[] {
  const found: number[] = [];
  collect(root, parts, 0, found);
  return found.length > 1 ? found.sort((a, b) => a - b) : found;
}

function collect(node: TrieNode, parts: readonly string[], depth: number, found: number[]): void {
  for (const position of node.rests) found.push(position);
  if (depth === parts.length) {
    for (const position of node.ends) found.push(position);
    return;
  }
  const part = parts[depth]!;
  const literal = node.literals.get(part);
  if (literal) collect(literal, parts, depth + 1, found);
  // `:name` and `*` match exactly one non-empty segment.
  if (node.one && part !== "") collect(node.one, parts, depth + 1, found);
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

