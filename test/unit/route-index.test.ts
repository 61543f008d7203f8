import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RouteConfig } from "../../src/config/schema";
import { compileRoutes, findAmbiguities, matchRoute, normalizeHost, type CompiledRoute, type RouteOptions, type RouteRequest } from "../../src/policy/routes";
import { issuesFor } from "./rules";

/**
 * `matchRoute` looks rules up in an index (a trie of pattern segments) and `findAmbiguities` compares rules
 * only within groups of one shape. The oracles below are the linear scan and the pairwise comparison they
 * replaced, kept verbatim (but for a host rule without a port covering the host's other ports, T-E4): over
 * generated tables and requests both must give the same rule, and the same pairs in the same order, so
 * precedence (README "Route rules") and the configuration errors are unchanged.
 */

type Segment = CompiledRoute["segments"][number];

function shapeOf(route: CompiledRoute): string {
  return `${route.host ?? ""}|${route.segments.map((s) => (s.kind === "literal" ? `L${s.value}` : s.kind === "one" ? "*" : "**")).join("/")}`;
}

function pathParts(path: string): string[] {
  if (path === "/") return [""];
  const parts = path.slice(1).split("/");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  return parts;
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

function linearBestMatch(routes: readonly CompiledRoute[], request: RouteRequest, parts: readonly string[]): CompiledRoute | undefined {
  let viaGet: CompiledRoute | undefined;
  for (const route of routes) {
    if (route.host !== undefined && route.host !== request.host && (route.host.includes(":") || !request.host.startsWith(`${route.host}:`))) continue;
    if (!pathMatches(route.segments, parts)) continue;
    const direct = route.methods === "any" || route.methods.has(request.method);
    if (viaGet) {
      if (shapeOf(route) !== shapeOf(viaGet)) return viaGet;
      if (direct && route.methods !== "any") return route;
      continue;
    }
    if (direct) return route;
    if (request.method === "HEAD" && route.methods !== "any" && route.methods.has("GET")) viaGet = route;
  }
  return viaGet;
}

function linearMatchRoute(routes: readonly CompiledRoute[], request: RouteRequest, options: RouteOptions = {}): CompiledRoute | "refused" | undefined {
  const path = options.caseInsensitive ? request.path.toLowerCase() : request.path;
  const parts = pathParts(path);
  const exact = linearBestMatch(routes, request, parts);
  // T-I12: `/p/` where the rule for `/p` and the rule for `/p/**` differ is refused (written apart from the index).
  if (exact && path.length > 1 && path.endsWith("/")) {
    const subtree = linearBestMatch(routes, request, [...parts, ""]);
    const prefix = (route: CompiledRoute) => JSON.stringify(route.segments);
    if (subtree && subtree !== exact && subtree.segments.at(-1)?.kind === "rest" && prefix(exact) === JSON.stringify(subtree.segments.slice(0, -1))) return "refused";
  }
  if (!options.suffixMatch) return exact;
  const last = parts[parts.length - 1]!;
  const dot = last.indexOf(".", 1);
  if (dot === -1) return exact;
  const named = exact?.segments.length === parts.length && exact.segments[parts.length - 1]?.kind === "literal";
  if (named) return exact;
  return linearBestMatch(routes, request, [...parts.slice(0, -1), last.slice(0, dot)]);
}

const withHead = (methods: ReadonlySet<string>) => (methods.has("GET") ? new Set([...methods, "HEAD"]) : methods);
function onlyHeadOverlap(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const direct = [...a].filter((m) => b.has(m));
  return direct.length === 0 && (a.has("HEAD") || b.has("HEAD"));
}

function pairwiseAmbiguities(routes: readonly CompiledRoute[]): [CompiledRoute, CompiledRoute][] {
  const pairs: [CompiledRoute, CompiledRoute][] = [];
  for (let i = 0; i < routes.length; i++) {
    for (let j = i + 1; j < routes.length; j++) {
      const a = routes[i]!;
      const b = routes[j]!;
      if (shapeOf(a) !== shapeOf(b) || (a.methods === "any") !== (b.methods === "any")) continue;
      if (a.methods === "any" || b.methods === "any" || [...withHead(a.methods)].some((m) => withHead(b.methods as ReadonlySet<string>).has(m))) {
        const explicitHeadSplit = a.methods !== "any" && b.methods !== "any" && onlyHeadOverlap(a.methods, b.methods);
        if (!explicitHeadSplit) pairs.push(a.index < b.index ? [a, b] : [b, a]);
      }
    }
  }
  return pairs;
}

// Small alphabets, so that generated patterns and paths collide often (shared prefixes, ties, HEAD/GET pairs).
const LITERALS = ["a", "b", "A", "x.json", "x", ""];
const patternSegment = fc.constantFrom("a", "b", "A", "x", "x.json", ":id", "*");
const pattern = fc
  .tuple(fc.array(patternSegment, { maxLength: 3 }), fc.constantFrom("", "", "**", "/"))
  .map(([segments, tail]) => {
    const all = tail === "**" ? [...segments, "**"] : segments;
    return `/${all.join("/")}${tail === "/" && all.length ? "/" : ""}`;
  });
const methods = fc.constantFrom(["GET"], ["HEAD"], ["POST"], ["GET", "POST"], ["*"], ["DELETE", "HEAD"], ["OPTIONS"]);
const host = fc.constantFrom(undefined, undefined, "api.test", "admin.test", "api.test:8443");
const rule = fc.record({ path: pattern, methods, host }).map((r): RouteConfig => ({ ...r, access: "public" }) as unknown as RouteConfig);
const table = fc.array(rule, { minLength: 1, maxLength: 12 });
// Fewer shapes, so that ties (and near ties: GET beside HEAD, `*` beside a list) are common.
const tieRule = fc
  .record({ path: fc.constantFrom("/", "/a", "/a/", "/b", "/:x", "/*", "/a/**", "/b/**", "/:y/**", "/**"), methods, host: fc.constantFrom(undefined, "api.test") })
  .map((r): RouteConfig => ({ ...r, access: "public" }) as unknown as RouteConfig);
const tieTable = fc.array(tieRule, { minLength: 1, maxLength: 12 });
const request = fc.record({
  method: fc.constantFrom("GET", "HEAD", "POST", "DELETE", "OPTIONS", "PUT"),
  host: fc.constantFrom("api.test", "admin.test", "other.test", "api.test:8443", "api.test:9443"),
  path: fc
    .tuple(fc.array(fc.constantFrom(...LITERALS, "7", "a.json"), { maxLength: 4 }), fc.boolean())
    .map(([parts, slash]) => (parts.length === 0 ? "/" : `/${parts.join("/")}${slash ? "/" : ""}`)),
});
const options = fc.record({ caseInsensitive: fc.boolean(), suffixMatch: fc.boolean() });

describe("route index", () => {
  it("matchRoute returns the rule the linear scan returns, for generated tables and requests (property)", () => {
    let matched = 0;
    fc.assert(
      fc.property(table, options, fc.array(request, { minLength: 1, maxLength: 20 }), (rules, opts, requests) => {
        const routes = compileRoutes(rules, opts);
        // Besides the random requests, one aimed at each rule: its pattern with values in place of wildcards.
        const aimed = rules.map((r, i) => ({ ...requests[i % requests.length]!, path: r.path.replace(/:id|\*\*|\*/g, (w) => (w === "**" ? "a/7" : "7")) }));
        for (const req of [...requests, ...aimed]) {
          const expected = linearMatchRoute(routes, req, opts);
          let actual: CompiledRoute | "refused" | undefined;
          try {
            actual = matchRoute(routes, req, opts);
          } catch {
            actual = "refused";
          }
          expect(actual).toBe(expected);
          if (expected && expected !== "refused") matched++;
        }
      }),
      { numRuns: 1500 },
    );
    // The generators must exercise matches, not only misses.
    expect(matched).toBeGreaterThan(3000);
  });

  it("findAmbiguities returns the pairs, in the order, of the pairwise comparison (property)", () => {
    let ambiguous = 0;
    fc.assert(
      fc.property(fc.oneof(table, tieTable), (rules) => {
        const routes = compileRoutes(rules);
        const expected = pairwiseAmbiguities(routes);
        expect(findAmbiguities(routes)).toEqual(expected);
        if (expected.length > 1) ambiguous++;
      }),
      { numRuns: 1500 },
    );
    expect(ambiguous).toBeGreaterThan(40);
  });

  it("reports ties of interleaved groups in the pairwise order", () => {
    const get = (path: string) => ({ path, methods: ["GET"], access: "public" as const });
    expect(issuesFor([get("/a"), get("/b"), get("/b"), get("/a"), get("/a")]).map((issue) => issue.replace(/ with equal.*/, ""))).toEqual([
      "routes.3: can match the same requests as routes.0",
      "routes.4: can match the same requests as routes.0",
      "routes.2: can match the same requests as routes.1",
      "routes.4: can match the same requests as routes.3",
    ]);
  });

  it("reports every tie in a large table by the fields of the second rule, in table order", () => {
    const routes = Array.from({ length: 2000 }, (_, k) => ({ path: `/v1/res${k % 1000}/:id/**`, methods: ["GET"], access: "public" as const }));
    const issues = issuesFor(routes);
    expect(issues).toHaveLength(1000);
    expect(issues[0]).toBe("routes.1000: can match the same requests as routes.0 with equal precedence; make one more specific or merge them");
    expect(issues[999]).toMatch(/^routes\.1999: .* routes\.999 /);
  });

  it("normalizeHost: the already-normal shortcut answers what the full rewrite answers (property)", () => {
    // The full rewrite, as it was before the shortcut.
    const rewrite = (host: string, protocol: string) => {
      const match = /^(.*?)(?::(\d+))?$/.exec(host.toLowerCase())!;
      const name = match[1]!.replace(/\.$/, "");
      const port = match[2];
      return port && port !== (protocol === "http:" ? "80" : "443") ? `${name}:${port}` : name;
    };
    const host = fc.string({ unit: fc.constantFrom("a", "B", "0", "-", ".", ":", "8", "4", "3", "[", "]"), maxLength: 12 });
    const port = fc.constantFrom("", ":80", ":443", ":8443", ":0443", ":");
    fc.assert(
      fc.property(host, port, fc.constantFrom("http:", "https:"), (name, suffix, protocol) => {
        expect(normalizeHost(name + suffix, protocol)).toBe(rewrite(name + suffix, protocol));
      }),
      { numRuns: 3000 },
    );
  });
});
