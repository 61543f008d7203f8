import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { issuesFor, routeConfigs } from "./rules";
import { compileRoutes, findAmbiguities, matchRoute, normalizeHost } from "../../src/policy/routes";

describe("route precedence", () => {
  const routes = compileRoutes(
    routeConfigs([
      { path: "/v1/**", scopes: ["any"] },
      { path: "/v1/users/:id", methods: ["GET"], scopes: ["users:read"] },
      { path: "/v1/users/me", methods: ["GET"], scopes: ["self"] },
      { path: "/v1/users/*/posts", methods: ["GET", "POST"], scopes: ["posts"] },
      { path: "/v1/users/:id", methods: ["HEAD"], scopes: ["users:head", "users:read"] },
      { path: "/", methods: ["GET"], access: "public" },
      { path: "/v1/**", host: "admin.example.com", scopes: ["admin-host"] },
    ]),
  );
  const scopes = (method: string, path: string, host = "api.example.com") => matchRoute(routes, { method, host, path })?.rule.scopes[0];

  it("literal beats parameter beats rest; explicit methods beat *", () => {
    expect(scopes("GET", "/v1/users/me")).toBe("self");
    expect(scopes("GET", "/v1/users/7")).toBe("users:read");
    expect(scopes("DELETE", "/v1/users/7")).toBe("any");
    expect(scopes("POST", "/v1/users/7/posts")).toBe("posts");
    expect(scopes("GET", "/v1")).toBe("any");
    expect(scopes("GET", "/v1/")).toBe("any");
    expect(matchRoute(routes, { method: "GET", host: "x", path: "/" })?.rule.access).toBe("public");
  });

  it("HEAD uses the GET rule unless an equally specific HEAD rule exists", () => {
    expect(scopes("HEAD", "/v1/users/me")).toBe("self");
    expect(scopes("HEAD", "/v1/users/7")).toBe("users:head");
    expect(scopes("HEAD", "/v1/other")).toBe("any");
  });

  it("parameters never match empty segments; no match is undefined", () => {
    expect(scopes("GET", "/v1/users/")).toBe("any");
    expect(matchRoute(routes, { method: "GET", host: "x", path: "/v2" })).toBeUndefined();
    expect(matchRoute(routes, { method: "POST", host: "x", path: "/" })).toBeUndefined();
  });

  it("T-E4 host rules match the normalized host and beat host-less rules", () => {
    expect(scopes("GET", "/v1/anything", "admin.example.com")).toBe("admin-host");
    for (const raw of ["ADMIN.EXAMPLE.COM.", "admin.example.com:443", "Admin.Example.Com.:443"]) {
      expect(scopes("GET", "/v1/anything", normalizeHost(raw, "https:"))).toBe("admin-host");
    }
    expect(normalizeHost("api.example.com:8443")).toBe("api.example.com:8443");
    expect(normalizeHost("api.example.com:80", "http:")).toBe("api.example.com");
    expect(normalizeHost("api.example.com:80", "https:")).toBe("api.example.com:80");
    // A host rule without a port covers every port of the host (origins pick the virtual host by name).
    expect(scopes("GET", "/v1/anything", "admin.example.com:8443")).toBe("admin-host");
    expect(scopes("GET", "/v1/anything", "admin.example.com8443")).toBe("any");
    expect(scopes("GET", "/v1/anything", "admin.example.com.evil:8443")).toBe("any");
  });

  it("T-E4 a host rule with a port beats the host alone, which beats no host, whatever the order in the file", () => {
    const table = [
      { path: "/**", scopes: ["any-host"] },
      { host: "api.example.com", path: "/**", scopes: ["host"] },
      { host: "api.example.com:8443", path: "/**", scopes: ["host-and-port"] },
    ];
    for (const ordered of [table, [...table].reverse()]) {
      const compiled = compileRoutes(routeConfigs(ordered));
      const match = (host: string) => matchRoute(compiled, { method: "GET", host, path: "/x" })?.rule.scopes;
      expect([match("api.example.com:8443"), match("api.example.com:9443"), match("api.example.com"), match("other.example.com:8443")]).toEqual([["host-and-port"], ["host"], ["host"], ["any-host"]]);
    }
  });

  it("case-insensitive matching, when configured, folds literal segments only for matching", () => {
    const folded = compileRoutes(routeConfigs([{ path: "/Admin/**", scopes: ["admin"] }]), { caseInsensitive: true });
    expect(matchRoute(folded, { method: "GET", host: "x", path: "/ADMIN/x" }, { caseInsensitive: true })?.rule.scopes).toEqual(["admin"]);
    expect(matchRoute(folded, { method: "GET", host: "x", path: "/admin" }, { caseInsensitive: true })?.rule.scopes).toEqual(["admin"]);
  });
});

describe("T-I12 a pattern that ends beats the same prefix followed by **", () => {
  const routes = compileRoutes(
    routeConfigs([
      { path: "/admin/**", scopes: ["weak"] },
      { path: "/admin", scopes: ["admin"] },
      { path: "/admin/:id", scopes: ["one"] },
      { path: "/**", scopes: ["any"] },
    ]),
  );
  const scope = (path: string) => matchRoute(routes, { method: "GET", host: "x", path })?.rule.scopes[0];

  it("T-I12 /admin gets the /admin rule, never the weaker /admin/**; /admin/, which routers split, is refused; deeper paths keep their rules", () => {
    // Before: "the longer pattern wins" gave /admin and /admin/ to /admin/**, so the strict rule never applied.
    // Non-strict routers serve /admin/ with the /admin handler, strict ones (Hono, Go) with /admin/*: neither rule can be chosen.
    expect(scope("/admin")).toBe("admin");
    expect(() => scope("/admin/")).toThrow(expect.objectContaining({ reason: "path_trailing_slash_ambiguous", status: 400 }));
    expect([scope("/admin/7"), scope("/admin/7/x"), scope("/admins"), scope("/")]).toEqual(["one", "weak", "any", "any"]);
  });

  it("T-I12 the order of rules in the file does not decide", () => {
    for (const routes of [
      [{ path: "/admin", scopes: ["admin"] }, { path: "/admin/**", scopes: ["weak"] }],
      [{ path: "/admin/**", scopes: ["weak"] }, { path: "/admin", scopes: ["admin"] }],
    ]) {
      const compiled = compileRoutes(routeConfigs(routes));
      expect(matchRoute(compiled, { method: "GET", host: "x", path: "/admin" })?.rule.scopes[0]).toBe("admin");
      expect(() => matchRoute(compiled, { method: "GET", host: "x", path: "/admin/" })).toThrow(expect.objectContaining({ reason: "path_trailing_slash_ambiguous" }));
    }
  });

  it("T-I12 /admin/ with only one of the two rules, or a catch-all instead of /admin/**, is that rule's", () => {
    const only = (routes: { path: string; scopes: string[] }[], path: string) => matchRoute(compileRoutes(routeConfigs(routes)), { method: "GET", host: "x", path })?.rule.scopes[0];
    expect(only([{ path: "/admin", scopes: ["admin"] }], "/admin/")).toBe("admin");
    expect(only([{ path: "/admin/**", scopes: ["weak"] }], "/admin/")).toBe("weak");
    expect(only([{ path: "/admin", scopes: ["admin"] }, { path: "/**", scopes: ["any"] }], "/admin/")).toBe("admin");
    // A literal subtree beats a parameter at the first segment: /admin/** is the rule, nothing to refuse.
    expect(only([{ path: "/:x", scopes: ["one"] }, { path: "/admin/**", scopes: ["weak"] }], "/admin/")).toBe("weak");
    expect(() => only([{ path: "/:x", scopes: ["one"] }, { path: "/:x/**", scopes: ["weak"] }], "/admin/")).toThrow(expect.objectContaining({ reason: "path_trailing_slash_ambiguous" }));
  });
});

describe("T-E3 a HEAD rule weaker than the GET rule of its pattern is a configuration error (origins answer HEAD with the GET handler)", () => {
  it.each([
    ["public HEAD beside a token GET", [{ path: "/report", methods: ["GET"], scopes: ["admin"] }, { path: "/report", methods: ["HEAD"], access: "public" as const }]],
    ["fewer scopes", [{ path: "/r/:id", methods: ["GET", "POST"], scopes: ["a", "b"] }, { path: "/r/:x", methods: ["HEAD"], scopes: ["a"] }]],
    ["report-only HEAD", [{ path: "/r", methods: ["GET"], scopes: ["a"] }, { path: "/r", methods: ["HEAD"], scopes: ["a"], report_only: true }]],
    ["beside a * rule", [{ path: "/r/**", scopes: ["a"] }, { path: "/r/**", methods: ["HEAD", "OPTIONS"], access: "optional" as const }]],
    ["on one host", [{ path: "/r", host: "api.test", methods: ["GET"], scopes: ["a"] }, { path: "/r", host: "API.test.", methods: ["HEAD"], scopes: [] }]],
  ])("%s", (_label, routes) => {
    expect(issuesFor(routes as PortcullisConfig["routes"])).toEqual([expect.stringMatching(/^routes\.1\.methods: names HEAD apart from routes\.0, which covers GET for the same pattern, and asks less/)]);
  });

  it.each([
    ["the same requirements", [{ path: "/r", methods: ["GET"], scopes: ["a"] }, { path: "/r", methods: ["HEAD"], scopes: ["a"] }]],
    ["more scopes", [{ path: "/r", methods: ["GET"], scopes: ["a"] }, { path: "/r", methods: ["HEAD"], scopes: ["b", "a"] }]],
    ["a denying HEAD rule", [{ path: "/r", methods: ["GET"], access: "public" as const }, { path: "/r", methods: ["HEAD"], access: "deny" as const }]],
    ["another pattern", [{ path: "/r", methods: ["GET"], scopes: ["a"] }, { path: "/r/**", methods: ["HEAD"], access: "public" as const }]],
    ["another host", [{ path: "/r", methods: ["GET"], scopes: ["a"] }, { path: "/r", host: "other.test", methods: ["HEAD"], access: "public" as const }]],
  ])("%s is fine", (_label, routes) => {
    expect(issuesFor(routes as PortcullisConfig["routes"])).toEqual([]);
  });
});

describe("ambiguous rules are configuration errors", () => {
  it.each([
    ["same pattern, same method", [{ path: "/a/:id", methods: ["GET"] }, { path: "/a/*", methods: ["GET"] }]],
    ["same pattern, overlapping methods", [{ path: "/a", methods: ["GET", "POST"] }, { path: "/a", methods: ["POST"] }]],
    ["both any method", [{ path: "/a/**" }, { path: "/a/**", access: "public" as const }]],
    ["same host", [{ path: "/a", host: "x.test" }, { path: "/a", host: "X.TEST." }]],
    ["GET and an explicit GET,HEAD", [{ path: "/a", methods: ["GET"] }, { path: "/a", methods: ["HEAD", "GET"] }]],
  ])("%s", (_label, routes) => {
    const issues = issuesFor(routes as PortcullisConfig["routes"]);
    expect(issues).toEqual([expect.stringMatching(/^routes\.1: can match the same requests as routes\.0/)]);
  });

  it.each([
    ["different methods", [{ path: "/a", methods: ["GET"] }, { path: "/a", methods: ["POST"] }]],
    ["explicit beats any", [{ path: "/a" }, { path: "/a", methods: ["GET"] }]],
    ["HEAD rule beside GET rule", [{ path: "/a", methods: ["GET"] }, { path: "/a", methods: ["HEAD"] }]],
    ["different hosts", [{ path: "/a", host: "x.test" }, { path: "/a", host: "y.test" }]],
    ["host vs none", [{ path: "/a", host: "x.test" }, { path: "/a" }]],
    ["different shapes", [{ path: "/a/:x" }, { path: "/:y/b" }]],
  ])("not ambiguous: %s", (_label, routes) => {
    expect(issuesFor(routes as PortcullisConfig["routes"])).toEqual([]);
  });

  it("findAmbiguities reports each pair once", () => {
    const compiled = compileRoutes(routeConfigs([{ path: "/a" }, { path: "/b" }]));
    expect(findAmbiguities(compiled)).toEqual([]);
  });
});
