import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, type Gate } from "../helpers";
import { githubToken, googleToken, randomBase62, randomGithubToken } from "../provider-tokens";

/**
 * T-I4: a flood of random opaque tokens must not cost one upstream call each without bound. Provider
 * tokens of the wrong format never leave the gate; unknown tokens beyond `max_calls_per_minute` get a local
 * 503 while tokens seen active keep working; an upstream's rate limit is honoured (503 + its Retry-After,
 * no calls until then). The clock is injected: no real waiting.
 */

type Issuer = NonNullable<PortcullisConfig["issuers"]>[number];
type Introspection = NonNullable<Issuer["introspection"]>;
const SECRET = { GATE_CLIENT_SECRET: "s3cr3t", GITHUB_SECRET: "gh-secret" };
const nowSeconds = (ms: number) => Math.floor(ms / 1000);

function clock() {
  let t = Date.now();
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

const decisions = (gate: Gate) => gate.logs.filter((line) => line.event === "decision");
const lastReason = (gate: Gate) => decisions(gate).at(-1)?.reason;
const calls = async (fixture: Fixture) => (await fixture.stats()).introspectionCalls.length;

const activeAnswer = (exp: number) => ({ active: true, iss: ISSUER, aud: AUDIENCE, sub: "u", scope: "items:read", token_type: "Bearer", exp });

function rfc7662Gate(fixture: Fixture, introspection: Partial<Introspection>, now: () => number) {
  const issuer: Issuer = {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwks_uri: fixture.jwksUri,
    introspection: { endpoint: fixture.introspectionEndpoint, client_id: "gate", client_secret: "GATE_CLIENT_SECRET", ...introspection },
  };
  return makeGate(fixture, baseConfig(fixture, { issuers: [issuer] }), { env: SECRET, now });
}

function githubGate(fixture: Fixture, introspection: Partial<Introspection> = {}, now?: () => number) {
  const issuer: Issuer = {
    preset: "github",
    introspection: { client_id: "Iv1.abc123", client_secret: "GITHUB_SECRET", endpoint: `${fixture.issuerBase}/applications/{client_id}/token`, ...introspection },
  };
  return makeGate(fixture, baseConfig(fixture, { issuers: [issuer] }), { env: SECRET, ...(now ? { now } : {}) });
}

const githubAnswer = { scopes: ["items:read"], user: { id: 7, login: "octocat" }, app: { client_id: "Iv1.abc123" }, expires_at: null };

describe("T-I4 local format checks: a made-up provider token costs no upstream call", () => {
  it("T-I4 2,000 random GitHub-looking tokens with a wrong checksum, length or charset: 401 token_format_invalid, zero calls", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: githubAnswer } });
    const gate = githubGate(fixture);
    const good = randomGithubToken();
    const flipLast = (token: string) => token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    const forged = [
      ...Array.from({ length: 1_990 }, (_, i) => `${["gho_", "ghu_", "ghp_"][i % 3]}${randomBase62(36)}`),
      flipLast(good), // one character off in the checksum
      good.slice(0, 4) + (good[4] === "A" ? "B" : "A") + good.slice(5), // one character off in the random part
      `gho_${randomBase62(35)}`, // too short
      `gho_${randomBase62(37)}`, // too long
      `gho_${randomBase62(35)}-`, // not base62
      `github_pat_${randomBase62(10)}`, // too short
      `github_pat_${randomBase62(40)}.${randomBase62(40)}`, // not in the charset
      `github_pat_${randomBase62(250)}`, // longer than 255
      `ghs_${randomBase62(36)}`,
      `ghs_12_not.a.jwt.at.all`,
    ];
    const statuses = new Map<number, number>();
    for (const token of forged) {
      const status = (await gate.request("/items/1", { headers: bearer(token) })).status;
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 401: forged.length });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(forged[0]!) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_format_invalid");
    expect(await calls(fixture)).toBe(0);
    // The well-formed token is asked about (once), and works.
    expect((await gate.request("/items/1", { headers: bearer(good) })).status).toBe(200);
    expect(await calls(fixture)).toBe(1);
  });

  it("T-I4 every well-formed GitHub shape is asked about: classic prefixes, fine-grained, stateless installation tokens", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: githubAnswer } });
    const gate = githubGate(fixture, { token_prefixes: ["gho_", "ghu_", "ghp_", "ghs_", "github_pat_"] });
    const wellFormed = [
      githubToken("oauthToken", "gho_"),
      githubToken("userToServer", "ghu_"),
      githubToken("personalClassic", "ghp_"),
      githubToken("installation", "ghs_"),
      `github_pat_${randomBase62(22)}_${randomBase62(59)}`,
      `ghs_123456_${randomBase62(36)}.${randomBase62(200)}.${randomBase62(86)}`,
    ];
    for (const token of wellFormed) expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    expect(await calls(fixture)).toBe(wellFormed.length);
  });

  it("T-I4 Google: ya29. with base64url characters (and Google's trailing-dot padding) is asked about; other shapes are not", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: { aud: "c.apps.googleusercontent.com", sub: "1", scope: "items:read", expires_in: "3000" } } });
    const gate = makeGate(fixture, baseConfig(fixture, { issuers: [{ preset: "google", audiences: ["c.apps.googleusercontent.com"], introspection: { endpoint: fixture.introspectionEndpoint } }] }));
    for (const token of [googleToken("a0AfH6SMB-x_y"), `ya29.${randomBase62(150)}.......`]) {
      expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
    }
    for (const token of ["ya29.short", `ya29.${randomBase62(30)}+/=`, `ya29.${randomBase62(2_100)}`, "ya29.~~~~~~~~~~~~~~~~~~~~~~~~~"]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
      expect(lastReason(gate)).toBe("token_format_invalid");
    }
    expect(await calls(fixture)).toBe(2);
  });

  it("T-I4 check_format = false sends every token upstream (for a provider that changed its format)", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { status: 404, body: { message: "Not Found" } } });
    const gate = githubGate(fixture, { check_format: false });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(`gho_${randomBase62(36)}`) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_inactive");
    expect(await calls(fixture)).toBe(1);
  });
});

describe("T-I4 the per-isolate call budget", () => {
  it("T-I4 a flood of 2,000 random opaque tokens costs at most max_calls_per_minute calls; a good token keeps working throughout", async () => {
    const time = clock();
    const fixture = new Fixture();
    await fixture.serveIntrospection({ "good-token": { body: activeAnswer(nowSeconds(time.now()) + 3600) } }); // any other: inactive
    // cache_ttl = 0: the good token is asked about on every request, so the exemption is what keeps it working.
    const gate = rfc7662Gate(fixture, { max_calls_per_minute: 20, cache_ttl: 0, inactive_cache_ttl: 0 }, time.now);
    expect((await gate.request("/items/1", { headers: bearer("good-token") })).status).toBe(200);
    const seen = { good: 0, 401: 0, 503: 0 } as Record<string, number>;
    let retryAfter: string | null = null;
    for (let i = 0; i < 2_000; i++) {
      if (i % 50 === 0) {
        expect((await gate.request("/items/1", { headers: bearer("good-token") })).status).toBe(200);
        seen.good!++;
      }
      const response = await gate.request("/items/1", { headers: bearer(`flood-${randomBase62(32)}`) });
      seen[response.status] = (seen[response.status] ?? 0) + 1;
      if (response.status === 503) retryAfter = response.headers.get("retry-after");
    }
    // 20 calls of budget (the good token's first call took one), the rest answered locally.
    expect(seen).toEqual({ good: 40, 401: 19, 503: 1_981 });
    expect(await calls(fixture)).toBe(1 + 19 + 40);
    expect(retryAfter).toBe("3"); // 20 per minute: one call every 3 s
    expect(gate.logs.filter((line) => line.event === "introspection_budget_exhausted")).toEqual([
      expect.objectContaining({ issuer: ISSUER, max_calls_per_minute: 20 }),
    ]);
    const refused = await gate.request("/items/1", { headers: bearer("flood-last") });
    await expectRejected(gate, refused, 503, "temporarily_unavailable");
    expect(lastReason(gate)).toBe("introspection_budget_exhausted");
    expect(JSON.stringify(gate.logs)).not.toContain("flood-");

    // The bucket refills with time: 3 s buys one more call, a minute the whole budget.
    time.advance(3);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("flood-after-3s") }), 401, "invalid_token");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("flood-after-3s-b") }), 503, "temporarily_unavailable");
    time.advance(60);
    for (let i = 0; i < 20; i++) await expectRejected(gate, await gate.request("/items/1", { headers: bearer(`later-${i}`) }), 401, "invalid_token");
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("later-21") }), 503, "temporarily_unavailable");
  });

  it("T-I4 a provider flood (2,000 well-formed random GitHub tokens) is bounded the same way; the known token keeps working", async () => {
    const time = clock();
    const fixture = new Fixture();
    const good = githubToken("knownGoodToken");
    await fixture.serveIntrospection({ [good]: { body: githubAnswer }, default: { status: 404, body: { message: "Not Found" } } });
    const gate = githubGate(fixture, { max_calls_per_minute: 10, cache_ttl: 0, inactive_cache_ttl: 0 }, time.now);
    expect((await gate.request("/items/1", { headers: bearer(good) })).status).toBe(200);
    const statuses: Record<number, number> = {};
    for (let i = 0; i < 2_000; i++) {
      const status = (await gate.request("/items/1", { headers: bearer(randomGithubToken(["gho_", "ghu_", "ghp_"][i % 3])) })).status;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (i % 100 === 0) expect((await gate.request("/items/1", { headers: bearer(good) })).status).toBe(200);
    }
    expect(statuses).toEqual({ 401: 9, 503: 1_991 });
    expect(await calls(fixture)).toBe(1 + 9 + 20);
  });

  it("T-I4 a token found inactive loses its exemption; cached answers cost no budget", async () => {
    const time = clock();
    const fixture = new Fixture();
    await fixture.serveIntrospection({ "was-good": { body: activeAnswer(nowSeconds(time.now()) + 3600) } });
    const gate = rfc7662Gate(fixture, { max_calls_per_minute: 1, cache_ttl: 30, inactive_cache_ttl: 0 }, time.now);
    for (let i = 0; i < 5; i++) expect((await gate.request("/items/1", { headers: bearer("was-good") })).status).toBe(200);
    expect(await calls(fixture)).toBe(1); // one call, then cache hits: the budget of 1 is spent, no more
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("other") }), 503, "temporarily_unavailable");
    // Revoked at the AS: once the cached entry ends, it is asked about (still exempt), found inactive, and loses the exemption.
    await fixture.serveIntrospection({ default: { body: { active: false } } });
    time.advance(31); // half a call refilled: not enough for an unknown token
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("was-good") }), 401, "invalid_token");
    expect(await calls(fixture)).toBe(2);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("was-good") }), 503, "temporarily_unavailable");
  });

  it("T-I4 max_calls_per_minute defaults to 600 and is validated, naming the field", async () => {
    const { parseConfig } = await import("../../src/config/load");
    const fixture = new Fixture();
    const config = (introspection: Record<string, unknown>) =>
      parseConfig(baseConfig(fixture, { issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, introspection: { client_id: "g", client_secret: "S", ...introspection } }] }));
    const parsed = config({});
    expect(parsed.ok && parsed.config.issuers[0]!.introspection).toMatchObject({ max_calls_per_minute: 600, inactive_cache_ttl: 5, check_format: true });
    for (const bad of [0, -1, 1.5, "600", 1_000_001]) {
      const result = config({ max_calls_per_minute: bad });
      expect(result.ok ? [] : result.issues.map((issue) => issue.field)).toEqual(["issuers.0.introspection.max_calls_per_minute"]);
    }
    const format = config({ check_format: "no" });
    expect(format.ok ? [] : format.issues.map((issue) => issue.field)).toEqual(["issuers.0.introspection.check_format"]);
  });
});

describe("T-I4 upstream rate limiting: 503 + Retry-After, and no calls until then", () => {
  const limited = (status: number, headers: Record<string, string>) => ({ status, body: { message: "API rate limit exceeded" }, headers });

  it.each([
    ["GitHub 403 with x-ratelimit-remaining: 0 and x-ratelimit-reset", 403, (t: number) => ({ "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(nowSeconds(t) + 120) }), 120],
    ["GitHub 403 (secondary limit) with retry-after", 403, () => ({ "retry-after": "45" }), 45],
    ["429 with retry-after seconds", 429, () => ({ "retry-after": "30" }), 30],
    ["429 with a Retry-After HTTP date", 429, (t: number) => ({ "retry-after": new Date(t + 90_000).toUTCString() }), 90],
    ["429 without any header (GitHub: wait a minute)", 429, () => ({}), 60],
    ["429 asking for more than an hour (bounded)", 429, () => ({ "retry-after": "86400" }), 3600],
    ["429 with retry-after 0 (bounded below)", 429, () => ({ "retry-after": "0" }), 1],
  ])("T-I4 %s -> 503 with its Retry-After (bounded 1..3600 s), logged rate_limited, no calls in the window", async (_label, status, headers, wait) => {
    const time = clock();
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: limited(status, headers(time.now())) });
    const gate = githubGate(fixture, { cache_ttl: 0, inactive_cache_ttl: 0 }, time.now);
    const first = await gate.request("/items/1", { headers: bearer(githubToken("first")) });
    expect(first.headers.get("retry-after")).toBe(String(wait));
    await expectRejected(gate, first, 503, "temporarily_unavailable");
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "introspection_failed", reason: "rate_limited", retry_after: wait }));
    expect(lastReason(gate)).toBe("introspection_rate_limited");
    // Within the window: answered locally, with the time left, whatever the token.
    await fixture.serveIntrospection({ default: { body: githubAnswer } });
    time.advance(wait - 1);
    for (const token of [githubToken("first"), githubToken("second"), randomGithubToken()]) {
      const response = await gate.request("/items/1", { headers: bearer(token) });
      await expectRejected(gate, response, 503, "temporarily_unavailable");
      expect(response.headers.get("retry-after")).toBe("1"); // the time left
    }
    expect(await calls(fixture)).toBe(1);
    time.advance(1);
    expect((await gate.request("/items/1", { headers: bearer(githubToken("second")) })).status).toBe(200);
    expect(await calls(fixture)).toBe(2);
  });

  it("T-I4 tokens already cached keep working while the upstream is rate limiting; Google's 429 blocks its issuer too", async () => {
    const time = clock();
    const fixture = new Fixture();
    const good = googleToken("cachedGood");
    await fixture.serveIntrospection({
      [good]: { body: { aud: "c.apps.googleusercontent.com", sub: "1", scope: "items:read", expires_in: "3000" } },
      default: limited(429, { "retry-after": "120" }),
    });
    const gate = makeGate(
      fixture,
      baseConfig(fixture, { issuers: [{ preset: "google", audiences: ["c.apps.googleusercontent.com"], introspection: { endpoint: fixture.introspectionEndpoint } }] }),
      { now: time.now },
    );
    expect((await gate.request("/items/1", { headers: bearer(good) })).status).toBe(200);
    const response = await gate.request("/items/1", { headers: bearer(googleToken("unknown")) });
    await expectRejected(gate, response, 503, "temporarily_unavailable");
    expect(response.headers.get("retry-after")).toBe("120");
    time.advance(30);
    expect((await gate.request("/items/1", { headers: bearer(good) })).status).toBe(200); // a cache hit, no call
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(googleToken("other")) }), 503, "temporarily_unavailable");
    expect(await calls(fixture)).toBe(2);
  });

  it("T-I4 a 403 without rate-limit headers stays a credentials problem: no block, the next request asks again", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { status: 403, body: { message: "Forbidden" } } });
    const gate = githubGate(fixture);
    for (let i = 0; i < 2; i++) await expectRejected(gate, await gate.request("/items/1", { headers: bearer(githubToken(`t${i}`)) }), 503, "temporarily_unavailable");
    expect(gate.logs).toContainEqual(expect.objectContaining({ event: "introspection_failed", reason: "client_authentication_failed" }));
    expect(gate.logs).not.toContainEqual(expect.objectContaining({ reason: "rate_limited" }));
    expect(await calls(fixture)).toBe(2);
  });
});

describe("T-I4 the negative cache (inactive_cache_ttl, default 5 s)", () => {
  it("T-I4 a client retrying a dead token costs one call per 5 s, not one per request", async () => {
    const time = clock();
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: { active: false } } });
    const gate = rfc7662Gate(fixture, {}, time.now);
    for (let i = 0; i < 10; i++) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer("revoked") }), 401, "invalid_token");
      expect(lastReason(gate)).toBe("token_inactive");
    }
    expect(await calls(fixture)).toBe(1);
    time.advance(5);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer("revoked") }), 401, "invalid_token");
    expect(await calls(fixture)).toBe(2);
  });

  it("T-I4 the reason of a refused answer is kept for the cached refusal", async () => {
    const fixture = new Fixture();
    await fixture.serveIntrospection({ default: { body: { active: true, aud: "https://other-api", exp: nowSeconds(Date.now()) + 60 } } });
    const gate = rfc7662Gate(fixture, {}, () => Date.now());
    for (let i = 0; i < 2; i++) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer("foreign") }), 401, "invalid_token");
      expect(lastReason(gate)).toBe("audience_mismatch");
    }
    expect(await calls(fixture)).toBe(1);
  });
});
