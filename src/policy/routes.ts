import type { RouteConfig } from "../config/schema";

/**
 * Route rules: host + method list + path pattern -> requirement. Pattern segments are literals, `:name` or
 * `*` (exactly one non-empty segment), or a final `**` (the rest of the path, possibly empty).
 *
 * Precedence, first difference wins: a rule with a `host` beats one without; then segment by segment, a
 * literal beats `:param`/`*`, which beat `**`; then the longer pattern; then a rule naming methods beats
 * one with `*`. Two rules that could match one request and tie on all of that are a configuration error
 * (`findAmbiguities`), so the order of rules in the file never decides. Unmatched requests are denied.
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
const PCHAR = /^(?!:)([A-Za-z0-9\-._~!$&'()+,;=@:]|%[0-9A-F]{2})+$/;

/** Lower case, no trailing dot, no default port: `API.Example.com.:443` -> `api.example.com`. */
export function normalizeHost(host: string, protocol = "https:"): string {
  const match = /^(.*?)(?::(\d+))?$/.exec(host.toLowerCase())!;
  const name = match[1]!.replace(/\.$/, "");
  const port = match[2];
  const defaultPort = protocol === "http:" ? "80" : "443";
  return port && port !== defaultPort ? `${name}:${port}` : name;
}

export function compileRoutes(routes: readonly RouteConfig[], options: { caseInsensitive?: boolean } = {}): CompiledRoute[] {
  const compiled = routes.map((rule, index) => ({
    index,
    name: rule.name ?? `${rule.methods.join(",")} ${rule.host ?? ""}${rule.path}`,
    methods: rule.methods.includes("*") ? ("any" as const) : new Set(rule.methods),
    host: rule.host === undefined ? undefined : normalizeHost(rule.host),
    segments: compilePattern(rule.path, index, options.caseInsensitive ?? false),
    rule,
  }));
  return compiled.sort(bySpecificity);
}

function compilePattern(path: string, index: number, caseInsensitive: boolean): Segment[] {
  if (path === "/") return [{ kind: "literal", value: "" }];
  const parts = path.slice(1).split("/");
  return parts.map((part, i): Segment => {
    if (part === "**") {
      if (i !== parts.length - 1) throw new RoutePatternError(index, "path", "** is allowed only as the last segment");
      return { kind: "rest" };
    }
    if (part === "*" || /^:[A-Za-z_][A-Za-z0-9_]*$/.test(part)) return { kind: "one" };
    if (part === "" && i === parts.length - 1) return { kind: "literal", value: "" };
    if (!PCHAR.test(part) || part === "." || part === "..") {
      throw new RoutePatternError(index, "path", `segment ${i + 1} is not a canonical path segment`);
    }
    return { kind: "literal", value: caseInsensitive ? part.toLowerCase() : part };
  });
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
  if (a.segments.length !== b.segments.length) return b.segments.length - a.segments.length;
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
 */
export function matchRoute(routes: readonly CompiledRoute[], request: RouteRequest, caseInsensitive = false): CompiledRoute | undefined {
  const path = caseInsensitive ? request.path.toLowerCase() : request.path;
  const parts = path === "/" ? [""] : path.slice(1).split("/");
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
