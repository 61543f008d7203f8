import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig, RouteConfig } from "../../src/config/schema";
import { explain, type Explanation } from "../../src/pipeline/explain";
import { AUDIENCE, Fixture, ISSUER, makeGate, makeKey, mint, type TestKey } from "../helpers";

/**
 * Explain and the gate agree: for generated configurations (one to three issuers, among them a
 * tenant-templated one; report-only issuers and rules; token, optional, public and deny rules with scopes,
 * scopes_any and claim conditions; explicit OPTIONS rules) and generated requests (methods with HEAD and
 * OPTIONS, CORS preflights, encoded and refused paths, tokens signed with the fixture's key that are valid or
 * wrong in one way), `explain` gives the gate's decision, status, reason and rule. The gate's answer is read
 * from its response and its decision log line. MCP routes (listed operations with exact and pattern names
 * and their own scopes, body or header reading, client responses allowed or not) get generated JSON-RPC
 * bodies (requests, notifications, responses, batches, malformed, oversized) and `Mcp-Method`/`Mcp-Name`
 * headers that agree or not; explain and the gate must agree on the operation too.
 */

const RUNS = 4000;
const NOW = Date.UTC(2031, 0, 1);
const SECONDS = NOW / 1000;
const OTHER_ISSUER = "https://second.test/";
const TENANT_ISSUER = "https://login.test/{tenantid}/v2.0";
const TENANT = "11111111-1111-4111-8111-111111111111";
const FOREIGN_TENANT = "22222222-2222-4222-8222-222222222222";
const tenantIssuer = (tenant: string) => TENANT_ISSUER.replace("{tenantid}", tenant);

const SCOPES = ["a", "b", "admin"] as const;
const ROUTE_PATHS = ["/a/**", "/a/b", "/b/*", "/c/**", "/d", "/**"] as const;
const REQUEST_PATHS = ["/a", "/a/b", "/a/b/c", "/b/x", "/b", "/c/x.json", "/d", "/d/", "/e", "/A/b", "/a/%62"];
/** Paths the canonical path refuses (400) under the default path policy. */
const REFUSED_PATHS = ["/a/%2F", "/a/..%2Fb", "/a/b.", "/a;x", "/b//x"];
const METHOD_SETS = [["*"], ["GET"], ["POST", "DELETE"], ["OPTIONS"], ["GET", "OPTIONS"]] as const;
const METHODS = ["GET", "HEAD", "POST", "DELETE", "OPTIONS"] as const;

/** What is wrong with a generated token, if anything. */
const TOKEN_FLAWS = ["none", "expired", "nbf_future", "iat_future", "wrong_aud", "unknown_iss", "foreign_tenant", "tid_mismatch", "wrong_typ", "cnf", "nonce", "no_exp"] as const;
type Flaw = (typeof TOKEN_FLAWS)[number];

const issuerNames = fc.constantFrom(ISSUER, OTHER_ISSUER, TENANT_ISSUER);
const often = <T>(common: fc.Arbitrary<T>, rare: fc.Arbitrary<T>, weight = 4) => fc.oneof({ weight, arbitrary: common }, { weight: 1, arbitrary: rare });
const scopeSet = fc.subarray([...SCOPES]);

const methodSet = often(fc.constant<readonly string[]>(["*"]), fc.constantFrom<readonly string[]>(...METHOD_SETS), 1).map((methods) => [...methods]);

/** MCP operations: methods with and without names, exact and pattern names, one shape per method at most. */
const MCP_OPERATIONS = [
  { method: "tools/list" },
  { method: "notifications/initialized" },
  { method: "tools/call" },
  { method: "tools/call", name: "a" },
  { method: "tools/call", name: "a*" },
  { method: "tools/call", name: "*b" },
  { method: "resources/read", name: "file:///*" },
] as const;
const MCP_NAMES = ["a", "ab", "b", "A", " a", "a\u0000", "cb"] as const;
const MCP_METHODS = ["tools/list", "tools/call", "notifications/initialized", "resources/read", "Tools/List", "ping"] as const;

const mcpArb = (token: boolean) =>
  fc.record({
    operations: fc
      .uniqueArray(fc.nat(MCP_OPERATIONS.length - 1), { minLength: 1, maxLength: 4 })
      .chain((picked) => fc.tuple(...picked.map((i) => (token ? scopeSet : fc.constant<string[]>([])).map((scopes) => ({ ...MCP_OPERATIONS[i]!, scopes }))))),
    read_body: often(fc.constant(true), fc.constant(false), 3),
    allow_responses: fc.boolean(),
    max_body_bytes: fc.constant(1024),
  });
const maybeMcp = (token: boolean) => fc.option(mcpArb(token), { nil: undefined, freq: 2 });

const routeArb = (path: string): fc.Arbitrary<Partial<RouteConfig>> =>
  fc.oneof(
    fc.record({
      access: fc.constant("token" as const),
      methods: methodSet,
      scopes: scopeSet,
      scopes_any: fc.oneof(fc.constant<string[]>([]), scopeSet),
      claims: fc.constantFrom<RouteConfig["claims"]>([], [{ claim: "dept", equals: "x" }], [{ claim: "dept", one_of: ["x", "y"] }]),
      report_only: fc.boolean(),
      mcp: maybeMcp(true),
    }),
    fc.record({ access: fc.constantFrom("optional" as const, "public" as const), methods: methodSet, mcp: maybeMcp(false) }),
    fc.record({ access: fc.constant("deny" as const), methods: methodSet }),
  ).map((generated) => {
    // An absent `mcp`, not an undefined one: the schema is strict about keys.
    const { mcp, ...route } = generated as Partial<RouteConfig>;
    return { path, ...route, ...(mcp ? { mcp } : {}) } as Partial<RouteConfig>;
  });

const configArb = fc
  .record({
    issuers: fc.uniqueArray(
      fc.record({ issuer: issuerNames, report_only: fc.boolean(), tenants: fc.constantFrom<string[]>([TENANT], ["*"]), required: fc.constantFrom<string[]>([], ["dept"]) }),
      { minLength: 1, maxLength: 3, selector: (issuer) => issuer.issuer },
    ),
    routePaths: fc.uniqueArray(fc.constantFrom(...ROUTE_PATHS), { minLength: 1, maxLength: 5 }),
    cors: fc.constantFrom("forward" as const, "authorize" as const),
    overrides: fc.constantFrom("strip" as const, "reject" as const),
  })
  .chain(({ issuers, routePaths, cors, overrides }) =>
    fc.tuple(...routePaths.map(routeArb)).map((routes) => ({ issuers, routes, cors, overrides })),
  );

const tokenArb = fc.record({
  /** Which of the configured issuers signs it (`unknown_iss`: none of them). */
  issuer: fc.nat(2),
  flaw: often(fc.constant<Flaw>("none"), fc.constantFrom(...TOKEN_FLAWS), 1),
  scopes: scopeSet,
  dept: fc.constantFrom(undefined, "x", "z"),
});

/** A JSON-RPC body: one message of some kind, or what is not one. */
const rpcBodyArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ method: fc.constantFrom(...MCP_METHODS), name: fc.option(fc.constantFrom(...MCP_NAMES), { nil: undefined, freq: 4 }), id: fc.boolean() }).map(({ method, name, id }) => JSON.stringify({ jsonrpc: "2.0", ...(id ? { id: 1 } : {}), method, ...(name === undefined ? {} : { params: method === "resources/read" ? { uri: `file:///${name}` } : { name } }) })) },
  { weight: 1, arbitrary: fc.constantFrom('{"jsonrpc":"2.0","id":1,"result":{}}', '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "{", "", '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}', JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "a".repeat(1100) } })) },
);

/** Mirrored headers: absent, mirroring the body as a 2026-07-28 client does, or naming something else. */
const mcpHeadersArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant("mirror" as const) },
  {
    weight: 1,
    arbitrary: fc.record({
      method: fc.option(fc.constantFrom("tools/call", "tools/list"), { nil: undefined, freq: 2 }),
      name: fc.option(fc.constantFrom("a", "b", "=?base64?YQ==?="), { nil: undefined, freq: 2 }),
      version: fc.option(fc.constantFrom("2026-07-28", "2025-11-25"), { nil: undefined, freq: 2 }),
    }),
  },
);

const requestArb = fc.record({
  method: fc.constantFrom(...METHODS),
  path: often(fc.constantFrom(...REQUEST_PATHS), fc.constantFrom(...REFUSED_PATHS)),
  preflight: fc.option(fc.constantFrom("GET", "POST", "DELETE", "get"), { nil: undefined, freq: 2 }),
  methodOverride: often(fc.constant(false), fc.constant(true), 8),
  token: fc.option(tokenArb, { nil: undefined, freq: 4 }),
  body: fc.option(rpcBodyArb, { nil: undefined, freq: 5 }),
  mcpHeaders: mcpHeadersArb,
});

type GeneratedConfig = typeof configArb extends fc.Arbitrary<infer T> ? T : never;
type GeneratedRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function toConfig(fixture: Fixture, generated: GeneratedConfig): PortcullisConfig {
  return {
    realm: "agreement",
    issuers: generated.issuers.map((issuer) => ({
      issuer: issuer.issuer,
      audiences: [AUDIENCE],
      jwks_uri: fixture.jwksUri,
      algorithms: ["ES256"],
      report_only: issuer.report_only,
      required_claims: issuer.required,
      ...(issuer.issuer === TENANT_ISSUER ? { tenants: issuer.tenants } : {}),
    })),
    routes: generated.routes as RouteConfig[],
    methods: { cors_preflight: generated.cors, override_headers: generated.overrides },
  };
}

async function tokenFor(key: TestKey, token: NonNullable<GeneratedRequest["token"]>, config: GeneratedConfig): Promise<string> {
  const flaw: Flaw = token.flaw;
  const issuer = config.issuers[token.issuer % config.issuers.length]!.issuer;
  const tenant = flaw === "foreign_tenant" ? FOREIGN_TENANT : TENANT;
  const iss = flaw === "unknown_iss" ? "https://unknown.test/" : issuer === TENANT_ISSUER ? tenantIssuer(tenant) : issuer;
  const claims: Record<string, unknown> = {
    iss,
    aud: flaw === "wrong_aud" ? "https://elsewhere.test" : AUDIENCE,
    iat: flaw === "iat_future" ? SECONDS + 600 : SECONDS - 10,
    exp: flaw === "no_exp" ? undefined : flaw === "expired" ? SECONDS - 120 : SECONDS + 300,
    scope: token.scopes.join(" ") || undefined,
    ...(token.dept ? { dept: token.dept } : {}),
    ...(flaw === "nbf_future" ? { nbf: SECONDS + 600 } : {}),
    ...(issuer === TENANT_ISSUER ? { tid: flaw === "tid_mismatch" ? FOREIGN_TENANT : tenant } : {}),
    ...(flaw === "cnf" ? { cnf: { jkt: "thumbprint" } } : {}),
    ...(flaw === "nonce" ? { nonce: "n-1" } : {}),
  };
  return mint(key, claims, flaw === "wrong_typ" ? { typ: "JWT" } : {});
}

/** What a 2026-07-28 client mirrors of a body into `Mcp-Method` / `Mcp-Name`. */
function mirror(body: string | undefined): { method?: string; name?: string; version: string } {
  try {
    const message = JSON.parse(body ?? "") as { method?: unknown; params?: { name?: unknown; uri?: unknown } };
    const name = message.params?.name ?? message.params?.uri;
    return { version: "2026-07-28", ...(typeof message.method === "string" ? { method: message.method } : {}), ...(typeof name === "string" ? { name: headerSafe(name) } : {}) };
  } catch {
    return { version: "2026-07-28" };
  }
}

/** The value as it travels in a header: plain printable ASCII as is, anything else in the Base64 sentinel. */
const headerSafe = (value: string) => (/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(value) ? value : `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(value)))}?=`);

function headersFor(request: GeneratedRequest, token: string | undefined): Record<string, string> {
  const mirrored = request.mcpHeaders === "mirror" ? mirror(bodyOf(request)) : request.mcpHeaders;
  return {
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(request.preflight ? { origin: "https://app.test", "access-control-request-method": request.preflight } : {}),
    ...(request.methodOverride ? { "x-http-method-override": "DELETE" } : {}),
    ...(mirrored?.method ? { "mcp-method": mirrored.method } : {}),
    ...(mirrored?.name ? { "mcp-name": mirrored.name } : {}),
    ...(mirrored?.version ? { "mcp-protocol-version": mirrored.version } : {}),
  };
}

/** The body sent: none for GET and HEAD (fetch forbids one) and for preflights (browsers send none). */
const bodyOf = (request: GeneratedRequest) => (request.method === "GET" || request.method === "HEAD" || request.preflight ? undefined : request.body);

/** The gate's answer as explain states it: decision, status, reason, rule. */
function gateAnswer(status: number, line: Record<string, unknown>) {
  const allowed = status === 200;
  const would = line.would as { status: number; reason: string } | undefined;
  const allowReason = line.outcome === "allow_preflight" ? "preflight_allowed" : line.outcome === "allow" ? "requirements_met" : "anonymous_allowed";
  return {
    decision: allowed ? "allow" : "deny",
    status: allowed ? (would?.status ?? 200) : status,
    reason: allowed ? (would?.reason ?? allowReason) : line.reason,
    rule: line.rule,
    operation: line.operation,
  };
}

function explainedAnswer(explained: Explanation) {
  return { decision: explained.decision, status: explained.status ?? 200, reason: explained.reason, rule: explained.rule, operation: explained.operation };
}

describe("explain agrees with the gate (property)", () => {
  let fixture: Fixture;
  let key: TestKey;
  beforeAll(async () => {
    fixture = new Fixture();
    key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
  });

  it(`on decision, status, reason and rule for generated configurations and requests (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(requestArb, { minLength: 1, maxLength: 4 }), async (generated, requests) => {
        const config = toConfig(fixture, generated);
        const parsed = parseConfig(config);
        if (!parsed.ok) throw new Error(`generated an invalid configuration: ${JSON.stringify(parsed.issues)}`);
        const gate = makeGate(fixture, config, { now: () => NOW });
        for (const request of requests) {
          const token = request.token ? await tokenFor(key, request.token, generated) : undefined;
          const headers = headersFor(request, token);
          const url = `https://api.test${request.path}`;
          const body = bodyOf(request);
          const response = await gate.request(request.path, { method: request.method, headers, ...(body === undefined ? {} : { body }) });
          await response.arrayBuffer();
          const line = gate.logs.filter((entry) => entry.event === "decision").at(-1)!;
          const explained = explain(parsed.config, { method: request.method, url, token, headers, now: NOW, ...(body === undefined ? {} : { body }) });
          const context = `${request.method} ${request.path} ${JSON.stringify({ headers: { ...headers, authorization: undefined }, token: request.token, body })}`;
          expect(explainedAnswer(explained), context).toEqual(gateAnswer(response.status, line));
        }
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});
