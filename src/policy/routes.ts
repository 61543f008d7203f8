import type { RouteConfig } from "../config/schema";

/**
 * Route rules: method list + path pattern -> requirement. Pattern segments are literals, `:name` or `*`
 * (exactly one segment), or a final `**` (the rest of the path, possibly empty). The most specific rule
 * wins, compared segment by segment: literal beats `:param`/`*`, which beat `**`; then the longer pattern;
 * then an explicit method beats `*`. Unmatched requests are denied by the caller.
 */

export class RoutePatternError extends Error {
  constructor(
    readonly index: number,
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
  segments: Segment[];
  rule: RouteConfig;
}

const RANK = { literal: 0, one: 1, rest: 2 } as const;
const PCHAR = /^(?!:)([A-Za-z0-9\-._~!$&'()+,=@:]|%[0-9A-F]{2})+$/;

export function compileRoutes(routes: readonly RouteConfig[]): CompiledRoute[] {
  const compiled = routes.map((rule, index) => ({
    index,
    name: rule.name ?? `${rule.methods.join(",")} ${rule.path}`,
    methods: rule.methods.includes("*") ? ("any" as const) : new Set(rule.methods),
    segments: compilePattern(rule.path, index),
    rule,
  }));
  return compiled.sort(bySpecificity);
}

function compilePattern(path: string, index: number): Segment[] {
  if (path === "/") return [{ kind: "literal", value: "" }];
  const parts = path.slice(1).split("/");
  return parts.map((part, i): Segment => {
    if (part === "**") {
      if (i !== parts.length - 1) throw new RoutePatternError(index, "** is allowed only as the last segment");
      return { kind: "rest" };
    }
    if (part === "*" || /^:[A-Za-z_][A-Za-z0-9_]*$/.test(part)) return { kind: "one" };
    if (part === "" && i === parts.length - 1) return { kind: "literal", value: "" };
    if (!PCHAR.test(part) || part === "." || part === "..") {
      throw new RoutePatternError(index, `segment ${i + 1} is not a canonical path segment`);
    }
    return { kind: "literal", value: part };
  });
}

function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const x = a.segments[i];
    const y = b.segments[i];
    if (!x || !y) break;
    if (RANK[x.kind] !== RANK[y.kind]) return RANK[x.kind] - RANK[y.kind];
  }
  if (a.segments.length !== b.segments.length) return b.segments.length - a.segments.length;
  if ((a.methods === "any") !== (b.methods === "any")) return a.methods === "any" ? 1 : -1;
  return a.index - b.index;
}

/**
 * Origins answer HEAD with their GET handlers, so a GET rule covers HEAD; a rule listing HEAD itself
 * takes precedence only by the usual specificity order.
 */
function methodMatches(route: CompiledRoute, method: string): boolean {
  if (route.methods === "any") return true;
  return route.methods.has(method) || (method === "HEAD" && route.methods.has("GET"));
}

/** The most specific rule for this method and canonical path, or undefined (the caller denies). */
export function matchRoute(routes: readonly CompiledRoute[], method: string, path: string): CompiledRoute | undefined {
  const parts = path === "/" ? [""] : path.slice(1).split("/");
  return routes.find((route) => methodMatches(route, method) && pathMatches(route.segments, parts));
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
