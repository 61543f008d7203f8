import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig, RouteConfig } from "../../src/config/schema";
import { base64url } from "jose";
import { explainWithProof, type Explanation } from "../../src/pipeline/explain";
import { DPOP_MODES } from "../../src/config/schema";
import { issueNonce } from "../../src/lib/nonce";
import { AUDIENCE, Fixture, ISSUER, makeGate, makeKey, mint, type TestKey } from "../helpers";
import { makeProofKey, proof, type ProofClaims, type ProofKey } from "../dpop";

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
 *
 * Sender-constrained tokens (RFC 9449, RFC 8705): issuers with a DPoP mode, proof algorithms, unbound-token
 * policy and nonces, accepting certificate-bound tokens or not; rules overriding the DPoP mode; tokens
 * bound to the proof key, to another key, to a client certificate, or to nothing; the Bearer or the DPoP
 * scheme with zero, one or two `DPoP` headers, the proof valid or wrong in one way. `explainWithProof` makes
 * the gate's proof checks itself; what it cannot know is held equal on the gate's side: every proof is
 * fresh (a new jti, so the replay store, seen once per proof, never refuses), and the gate's request
 * carries the client certificate a certificate-bound token names (explain assumes it). The nonce secret is
 * given to both.
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

/** What a token is bound to: nothing, the proof key, another key, a client certificate, or a key and a certificate. */
const BINDINGS = ["none", "jkt", "jkt_other", "x5t", "both"] as const;
/** What is wrong with a generated DPoP proof, if anything. */
const PROOF_FLAWS = ["none", "typ", "htm", "htu", "htu_query", "iat_old", "expired", "ath_wrong", "ath_missing", "jti_missing", "signature", "jwk_private", "nonce_missing", "nonce_invalid", "malformed"] as const;
type ProofFlaw = (typeof PROOF_FLAWS)[number];
const NONCE_SECRET_BINDING = "DPOP_NONCE_SECRET";
const NONCE_SECRET = "agreement-nonce-secret-0123456789abcdef";
const ENV = { [NONCE_SECRET_BINDING]: NONCE_SECRET };
/** The client certificate's SHA-256: hex as Cloudflare gives it, base64url as `x5t#S256`. */
const CERT_DIGEST = new Uint8Array(32).map((_, i) => (i * 37 + 11) % 256);
const CERT_HEX = Array.from(CERT_DIGEST, (byte) => byte.toString(16).padStart(2, "0")).join("");
const CERT_X5T = base64url.encode(CERT_DIGEST);
const TLS = { tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: CERT_HEX } };

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

/** A rule's own DPoP mode, mostly absent (the issuer's applies). */
const maybeDpop = fc.option(fc.constantFrom(...DPOP_MODES), { nil: undefined, freq: 3 });

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
      dpop: maybeDpop,
    }),
    fc.record({ access: fc.constantFrom("optional" as const, "public" as const), methods: methodSet, mcp: maybeMcp(false), dpop: maybeDpop }),
    fc.record({ access: fc.constant("deny" as const), methods: methodSet }),
  ).map((generated) => {
    // An absent `mcp` or `dpop`, not an undefined one: the schema is strict about keys.
    const { mcp, dpop, ...route } = generated as Partial<RouteConfig>;
    return { path, ...route, ...(mcp ? { mcp } : {}), ...(dpop ? { dpop } : {}) } as Partial<RouteConfig>;
  });

const configArb = fc
  .record({
    issuers: fc.uniqueArray(
      fc.record({
        issuer: issuerNames,
        report_only: fc.boolean(),
        tenants: fc.constantFrom<string[]>([TENANT], ["*"]),
        required: fc.constantFrom<string[]>([], ["dept"]),
        dpop: fc.record({
          mode: often(fc.constantFrom("allowed" as const, "required" as const), fc.constant("disabled" as const), 2),
          algorithms: fc.constantFrom<string[]>(["ES256"], ["EdDSA"], ["ES256", "EdDSA"]),
          unbound_tokens: fc.constantFrom("reject" as const, "allow" as const),
          nonce: fc.boolean(),
        }),
        mtls_bound_tokens: fc.boolean(),
      }),
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
  // Mostly unbound or bound to the proof key (the two that can pass), sometimes any binding.
  binding: fc.oneof({ weight: 3, arbitrary: fc.constant<(typeof BINDINGS)[number]>("none") }, { weight: 3, arbitrary: fc.constant<(typeof BINDINGS)[number]>("jkt") }, { weight: 2, arbitrary: fc.constantFrom(...BINDINGS) }),
});

/** How the token is presented: the scheme, how many `DPoP` headers, which client key signs, what is wrong. */
const presentationArb = fc.record({
  scheme: fc.constantFrom("bearer" as const, "dpop" as const),
  proofs: often(fc.constant(1), fc.constantFrom(0, 2), 6),
  /** 0: ES256, 1: EdDSA. */
  key: fc.nat(1),
  flaw: often(fc.constant<ProofFlaw>("none"), fc.constantFrom(...PROOF_FLAWS), 1),
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
  presentation: presentationArb,
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
      dpop: {
        mode: issuer.dpop.mode,
        algorithms: issuer.dpop.algorithms as ("ES256" | "EdDSA")[],
        // `required` with `allow` is a configuration error (config/rules.ts).
        unbound_tokens: issuer.dpop.mode === "required" ? "reject" : issuer.dpop.unbound_tokens,
        ...(issuer.dpop.nonce ? { nonce: { secret: NONCE_SECRET_BINDING, lifetime: 300 } } : {}),
      },
      mtls_bound_tokens: issuer.mtls_bound_tokens,
    })),
    routes: generated.routes as RouteConfig[],
    methods: { cors_preflight: generated.cors, override_headers: generated.overrides },
  };
}

/** The token's `cnf` for its binding (the proof key's thumbprint, another key's, the certificate's). */
function confirmation(binding: (typeof BINDINGS)[number], proofKey: ProofKey, otherKey: ProofKey): Record<string, string> | undefined {
  const jkt = binding === "jkt" || binding === "both" ? proofKey.jkt : binding === "jkt_other" ? otherKey.jkt : undefined;
  const x5t = binding === "x5t" || binding === "both" ? CERT_X5T : undefined;
  return jkt === undefined && x5t === undefined ? undefined : { ...(jkt ? { jkt } : {}), ...(x5t ? { "x5t#S256": x5t } : {}) };
}

async function tokenFor(key: TestKey, token: NonNullable<GeneratedRequest["token"]>, config: GeneratedConfig, cnf: Record<string, string> | undefined): Promise<string> {
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
    ...(flaw === "cnf" ? { cnf: { jkt: "thumbprint" } } : cnf ? { cnf } : {}),
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

/**
 * A proof for the request, valid or wrong in one way (`flaw`); the nonce, when the token's issuer asks for
 * one, is the one the gate issues now.
 */
async function proofFor(key: ProofKey, flaw: ProofFlaw, request: GeneratedRequest, token: string, nonceContext: string | undefined): Promise<string> {
  if (flaw === "malformed") return "not-a.dpop-proof";
  const htu = `https://api.test${request.path}`;
  const nonce = nonceContext === undefined || flaw === "nonce_missing" ? undefined : flaw === "nonce_invalid" ? "0.AAAAAAAAAAAAAAAAAAAAAA" : await issueNonce(NONCE_SECRET, nonceContext, 300, NOW);
  const signed = await proof(
    key,
    {
      htm: flaw === "htm" ? "PATCH" : request.method,
      htu: flaw === "htu" ? "https://other.test/a" : flaw === "htu_query" ? `${htu}?x=1` : htu,
      token,
      iat: flaw === "iat_old" ? SECONDS - 3600 : SECONDS,
      ...(flaw === "expired" ? { exp: SECONDS - 60 } : {}),
      ...(flaw === "ath_wrong" ? { ath: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } : flaw === "ath_missing" ? { ath: null } : {}),
      ...(flaw === "jti_missing" ? { jti: null } : {}),
      ...(nonce === undefined ? {} : { nonce }),
    } as ProofClaims,
    { ...(flaw === "typ" ? { typ: "JWT" } : {}), ...(flaw === "jwk_private" ? { jwk: { ...key.jwk, d: "AAAA" } } : {}) },
  );
  if (flaw !== "signature") return signed;
  // One signature character changed: the same header and claims, a signature of nothing.
  const at = signed.length - 10;
  return `${signed.slice(0, at)}${signed[at] === "A" ? "B" : "A"}${signed.slice(at + 1)}`;
}

function headersFor(request: GeneratedRequest, token: string | undefined, proofs: string[]): [string, string][] {
  const mirrored = request.mcpHeaders === "mirror" ? mirror(bodyOf(request)) : request.mcpHeaders;
  const scheme = request.presentation.scheme === "dpop" ? "DPoP" : "Bearer";
  return [...Object.entries({
    ...(token ? { authorization: `${scheme} ${token}` } : {}),
    ...(request.preflight ? { origin: "https://app.test", "access-control-request-method": request.preflight } : {}),
    ...(request.methodOverride ? { "x-http-method-override": "DELETE" } : {}),
    ...(mirrored?.method ? { "mcp-method": mirrored.method } : {}),
    ...(mirrored?.name ? { "mcp-name": mirrored.name } : {}),
    ...(mirrored?.version ? { "mcp-protocol-version": mirrored.version } : {}),
  }), ...proofs.map((value): [string, string] => ["dpop", value])];
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
  let proofKeys: ProofKey[];
  let otherKey: ProofKey;
  beforeAll(async () => {
    fixture = new Fixture();
    key = await makeKey("ES256");
    await fixture.serveJwks({ keys: [key.publicJwk] });
    proofKeys = [await makeProofKey("ES256"), await makeProofKey("EdDSA")];
    otherKey = await makeProofKey("ES256");
  });

  it(`on decision, status, reason and rule for generated configurations and requests (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(requestArb, { minLength: 1, maxLength: 4 }), async (generated, requests) => {
        const config = toConfig(fixture, generated);
        const parsed = parseConfig(config);
        if (!parsed.ok) throw new Error(`generated an invalid configuration: ${JSON.stringify(parsed.issues)}`);
        const gate = makeGate(fixture, config, { now: () => NOW, env: ENV });
        for (const request of requests) {
          const { presentation } = request;
          const proofKey = proofKeys[presentation.key]!;
          const cnf = request.token && confirmation(request.token.binding, proofKey, otherKey);
          const token = request.token ? await tokenFor(key, request.token, generated, cnf) : undefined;
          // The nonce context is the issuer the token names (a nonce for another issuer is invalid there).
          const named = request.token && generated.issuers[request.token.issuer % generated.issuers.length]!;
          const nonceContext = named?.dpop.nonce ? named.issuer : undefined;
          const proofs = token ? await Promise.all(Array.from({ length: presentation.proofs }, () => proofFor(proofKey, presentation.flaw, request, token, nonceContext))) : [];
          const headers = headersFor(request, token, proofs);
          const url = `https://api.test${request.path}`;
          const body = bodyOf(request);
          // The client certificate a certificate-bound token names: explain cannot see one and assumes it.
          const response = await gate.request(request.path, { method: request.method, headers, cf: TLS, ...(body === undefined ? {} : { body }) } as RequestInit);
          await response.arrayBuffer();
          const line = gate.logs.filter((entry) => entry.event === "decision").at(-1)!;
          const explained = await explainWithProof(parsed.config, { method: request.method, url, headers, now: NOW, env: ENV, ...(body === undefined ? {} : { body }) });
          const context = `${request.method} ${request.path} ${JSON.stringify({ headers: headers.map(([name, value]) => (name === "authorization" ? [name, value.split(" ")[0]] : [name, value])), token: request.token, presentation, body })}`;
          expect(explainedAnswer(explained), context).toEqual(gateAnswer(response.status, line));
        }
      }),
      { numRuns: RUNS },
    );
  }, 240_000);
});
