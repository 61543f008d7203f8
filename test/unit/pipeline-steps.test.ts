import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { compileRules, decide, decidePreflight, matchRule } from "../../src/pipeline/decide";
import { toIdentity } from "../../src/pipeline/identity";
import { canonicalRequest, checkMethodOverride, corsPreflight } from "../../src/pipeline/request";

/** The pipeline's steps one at a time (the gate and explain compose them; test/gate holds them together). */

const ISSUER = "https://issuer.test/";

function resolved(overrides: Partial<PortcullisConfig> = {}) {
  const parsed = parseConfig({
    issuers: [{ issuer: ISSUER, audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
    routes: [
      { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
      { path: "/beta/**", scopes: ["beta"], report_only: true },
      { path: "/public/**", access: "public" },
      { path: "/cors/**", methods: ["OPTIONS"], access: "public" },
      { path: "/internal/**", access: "deny" },
    ],
    ...overrides,
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.config;
}

const request = (config: ReturnType<typeof resolved>, method: string, url: string) => canonicalRequest(method, new URL(url), compileRules(config).paths, config);

describe("pipeline steps", () => {
  const config = resolved();
  const rules = compileRules(config);
  const issuer = config.issuers[0]!;
  const subject = (scope: string) => toIdentity(issuer, { iss: ISSUER, sub: "u", scope });

  it("decide: no token on a token rule is a bare 401; the requirements; report-only relaxes them", () => {
    const items = matchRule(rules, request(config, "GET", "https://api.test/items/1"));
    expect(decide(items, undefined, undefined)).toEqual({ outcome: "deny", status: 401, reason: "token_missing", rule: items.name });
    expect(decide(items, subject("items:read"), issuer)).toMatchObject({ outcome: "allow", status: 200, reason: "requirements_met" });
    expect(decide(items, subject("other"), issuer)).toMatchObject({ outcome: "deny", status: 403, reason: "scope_missing", refusal: { code: "insufficient_scope" } });
    expect(decide(items, subject("other"), { ...issuer, report_only: true })).toMatchObject({ outcome: "allow", report_only: true, would: { status: 403, reason: "scope_missing" } });
    const beta = matchRule(rules, request(config, "GET", "https://api.test/beta/x"));
    expect(decide(beta, subject("other"), issuer)).toMatchObject({ outcome: "allow", report_only: true, would: { reason: "scope_missing" } });
    expect(decide(beta, undefined, undefined)).toMatchObject({ outcome: "deny", status: 401 });
    const internal = matchRule(rules, request(config, "GET", "https://api.test/internal/x"));
    expect(decide(internal, subject("admin"), issuer)).toMatchObject({ outcome: "deny", status: 403, reason: "rule_denies" });
    const pub = matchRule(rules, request(config, "GET", "https://api.test/public/x"));
    expect(decide(pub, undefined, undefined)).toMatchObject({ outcome: "allow_anonymous", reason: "anonymous_allowed" });
    expect(() => matchRule(rules, request(config, "GET", "https://api.test/nowhere"))).toThrow(expect.objectContaining({ reason: "no_matching_rule" }));
  });

  it("the canonical request: path, host, forwarded query; the method-override policy", () => {
    expect(request(config, "GET", "https://API.test:443/%69tems/a?_method=DELETE&q=1")).toEqual({ method: "GET", path: "/items/a", host: "api.test", search: "?q=1", queryOverride: true });
    expect(() => request(config, "GET", "https://api.test/a/..%2Fb")).toThrow(expect.objectContaining({ reason: "path_ambiguous_escape" }));
    const reject = resolved({ methods: { override_headers: "reject" } });
    expect(() => checkMethodOverride(request(reject, "GET", "https://api.test/x?_method=PUT"), new Headers(), reject.methods)).toThrow(expect.objectContaining({ status: 400, reason: "method_override" }));
    expect(() => checkMethodOverride(request(reject, "GET", "https://api.test/x"), new Headers({ "x-http-method-override": "PUT" }), reject.methods)).toThrow(expect.objectContaining({ reason: "method_override" }));
    expect(() => checkMethodOverride(request(config, "GET", "https://api.test/x?_method=PUT"), new Headers(), config.methods)).not.toThrow();
  });

  it("preflight detection: the announced method, unless a rule names OPTIONS; a body is refused", () => {
    const preflight = (url: string, headers: Record<string, string>, body: unknown = null) =>
      corsPreflight({ method: "OPTIONS", headers: new Headers(headers), body }, request(config, "OPTIONS", url), rules.routes, rules.paths, config.methods);
    const cors = { origin: "https://app.test", "access-control-request-method": "get" };
    expect(preflight("https://api.test/items/1", cors)).toBe("GET");
    expect(preflight("https://api.test/items/1", { origin: "https://app.test" })).toBeUndefined();
    expect(preflight("https://api.test/cors/x", cors)).toBeUndefined();
    expect(() => preflight("https://api.test/items/1", { ...cors, "content-length": "3" })).toThrow(expect.objectContaining({ reason: "preflight_with_body" }));
    expect(decidePreflight(rules, request(config, "OPTIONS", "https://api.test/items/1"), "GET")).toMatchObject({ outcome: "allow_preflight", rule: "GET /items/**" });
    expect(decidePreflight(rules, request(config, "OPTIONS", "https://api.test/internal/x"), "GET")).toMatchObject({ outcome: "deny", status: 403, reason: "no_matching_rule" });
  });
});
