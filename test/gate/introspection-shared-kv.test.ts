import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { sha256Hex } from "../../src/lib/digest";
import { AUDIENCE, baseConfig, bearer, expectRejected, Fixture, ISSUER, makeGate, originSaw, type Gate } from "../helpers";
import { githubToken } from "../provider-tokens";

/**
 * T-I3: one KV namespace shared by two configurations (staging and production, other audiences, another
 * client id, another endpoint). An introspection entry is keyed by what the answer depends on (issuer,
 * flavor, endpoint, client id), and every hit re-runs the reading configuration's own answer checks, so
 * one configuration never accepts the other's entries on the writer's checks.
 */

type Issuer = NonNullable<PortcullisConfig["issuers"]>[number];
type Introspection = NonNullable<Issuer["introspection"]>;
const SECRET = { GATE_CLIENT_SECRET: "s3cr3t", OTHER_SECRET: "other", GITHUB_SECRET: "gh" };
const now = () => Math.floor(Date.now() / 1000);
const STAGING = "https://staging.api.test";
const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const calls = async (fixture: Fixture) => (await fixture.stats()).introspectionCalls;

const answer = (extra: Record<string, unknown> = {}) => ({ active: true, iss: ISSUER, aud: AUDIENCE, sub: "u", scope: "items:read", token_type: "Bearer", exp: now() + 3600, ...extra });

/** A gate with the KV cache on; every gate built here shares the test environment's PORTCULLIS_KV. */
function kvGate(fixture: Fixture, introspection: Partial<Introspection> = {}, issuer: Partial<Issuer> = {}) {
  return makeGate(
    fixture,
    baseConfig(fixture, {
      issuers: [
        {
          issuer: ISSUER,
          audiences: [AUDIENCE],
          jwks_uri: fixture.jwksUri,
          introspection: { endpoint: fixture.introspectionEndpoint, client_id: "gate", client_secret: "GATE_CLIENT_SECRET", kv_cache: true, cache_ttl: 300, ...introspection },
          ...issuer,
        },
      ],
    }),
    { env: SECRET },
  );
}

const token = () => `shared-${crypto.randomUUID()}`;

/** Writes an entry under a gate's own v2 key, as another configuration with the same key inputs (or an older gate) could have. */
async function plant(token: string, claims: Record<string, unknown>, key: { endpoint: string; client_id: string; flavor?: string; issuer?: string }) {
  const digest = await sha256Hex(JSON.stringify([key.issuer ?? ISSUER, key.flavor ?? "rfc7662", key.endpoint, key.client_id, token]));
  await env.PORTCULLIS_KV.put(`introspection:v2:${digest}`, JSON.stringify({ v: 2, claims, expires_at: Date.now() + 300_000 }), { expirationTtl: 300 });
}

describe("T-G4 a revoked token is accepted at most for the reading configuration's cache_ttl, whoever wrote the entry", () => {
  /** A gate reading and writing the shared KV with the given cache_ttl and clock. */
  const timedGate = (fixture: Fixture, cache_ttl: number, now?: () => number) =>
    makeGate(
      fixture,
      baseConfig(fixture, {
        issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: fixture.jwksUri, introspection: { endpoint: fixture.introspectionEndpoint, client_id: "gate", client_secret: "GATE_CLIENT_SECRET", kv_cache: true, cache_ttl } }],
      }),
      { env: SECRET, ...(now ? { now } : {}) },
    );

  it("T-G4 cache_ttl = 0 never takes another deploy's entry: the revocation is seen at once", async () => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: answer() } });
    expect((await timedGate(fixture, 3600).request("/items/1", { headers: bearer(t) })).status).toBe(200);
    await fixture.serveIntrospection({ [t]: { body: { active: false } } });
    const strict = timedGate(fixture, 0);
    await expectRejected(strict, await strict.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
  });

  it("T-G4 a shorter cache_ttl than the writer's ends the entry at the reader's bound, counted from the write", async () => {
    const fixture = new Fixture();
    const t = token();
    const start = Date.now();
    let offset = 0;
    await fixture.serveIntrospection({ [t]: { body: answer() } });
    expect((await timedGate(fixture, 3600, () => start).request("/items/1", { headers: bearer(t) })).status).toBe(200);
    await fixture.serveIntrospection({ [t]: { body: { active: false } } });
    const reader = timedGate(fixture, 120, () => start + offset);
    offset = 60_000; // within the reader's 120 s of the write: the shared answer still counts
    expect((await reader.request("/items/1", { headers: bearer(t) })).status).toBe(200);
    offset = 20 * 60_000; // past it (the writer would have kept it for an hour)
    await expectRejected(reader, await reader.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
  });

  it("T-G4 an entry claiming to be written in the future is ignored", async () => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: { active: false } } });
    const digest = await sha256Hex(JSON.stringify([ISSUER, "rfc7662", fixture.introspectionEndpoint, "gate", t]));
    const later = Date.now() + 10 * 365 * 86_400_000;
    await env.PORTCULLIS_KV.put(`introspection:v2:${digest}`, JSON.stringify({ v: 2, claims: answer(), expires_at: later, written_at: later }), { expirationTtl: 300 });
    const gate = timedGate(fixture, 300);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
  });
});

describe("T-I3 two configurations sharing one KV namespace", () => {
  it("T-I3 an entry written under audience A is not accepted by a gate for audience B (401, from the cached entry itself)", async () => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: answer() } });
    const production = kvGate(fixture);
    expect((await production.request("/items/1", { headers: bearer(t) })).status).toBe(200);
    expect((await env.PORTCULLIS_KV.list({ prefix: "introspection:v2:" })).keys.length).toBeGreaterThan(0);

    const staging = kvGate(fixture, {}, { audiences: [STAGING] });
    await expectRejected(staging, await staging.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(staging)).toBe("audience_mismatch");
    expect(await calls(fixture)).toHaveLength(1); // the KV entry was read and re-checked, not trusted

    // The same entry still serves the configuration it fits (a cold isolate of production).
    const coldProduction = kvGate(fixture);
    expect((await originSaw(await coldProduction.request("/items/1", { headers: bearer(t) }))).headers["x-auth-sub"]).toBe("u");
    expect(await calls(fixture)).toHaveLength(1);
  });

  it("T-I3 a gate with another introspection endpoint does not read the entry: it asks its own endpoint", async () => {
    const production = new Fixture();
    const staging = new Fixture();
    const t = token();
    await production.serveIntrospection({ [t]: { body: answer() } });
    await staging.serveIntrospection({ [t]: { body: { active: false } } });
    expect((await kvGate(production).request("/items/1", { headers: bearer(t) })).status).toBe(200);
    const other = kvGate(staging);
    await expectRejected(other, await other.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(other)).toBe("token_inactive");
    expect(await calls(staging)).toHaveLength(1);
  });

  it("T-I3 a gate with another client id does not read the entry: it asks with its own credentials", async () => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: answer() } });
    expect((await kvGate(fixture).request("/items/1", { headers: bearer(t) })).status).toBe(200);
    await fixture.serveIntrospection({ [t]: { body: { active: false } } }); // what the AS tells the other client
    const other = kvGate(fixture, { client_id: "other-gate", client_secret: "OTHER_SECRET" });
    await expectRejected(other, await other.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    const made = await calls(fixture);
    expect(made).toHaveLength(2);
    expect(made[1]!.authorization).toBe(`Basic ${btoa("other-gate:other")}`);
  });

  it("T-I3 GitHub: another OAuth app's gate asks GitHub itself instead of reading the first app's entry", async () => {
    const fixture = new Fixture();
    const t = githubToken("sharedGithubToken");
    await fixture.serveIntrospection({ default: { body: { scopes: ["items:read"], user: { id: 1, login: "o" }, app: { client_id: "Iv1.first" }, expires_at: null } } });
    const github = (client_id: string) =>
      makeGate(
        fixture,
        baseConfig(fixture, {
          issuers: [{ preset: "github", introspection: { client_id, client_secret: "GITHUB_SECRET", endpoint: `${fixture.issuerBase}/applications/{client_id}/token`, kv_cache: true, cache_ttl: 300 } }],
        }),
        { env: SECRET },
      );
    expect((await github("Iv1.first").request("/items/1", { headers: bearer(t) })).status).toBe(200);
    const second = github("Iv1.second");
    await expectRejected(second, await second.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(second)).toBe("client_mismatch");
    expect((await calls(fixture)).map((call) => call.path)).toEqual(["applications/Iv1.first/token", "applications/Iv1.second/token"]);
  });

  it.each([
    ["an audience of another configuration", { aud: STAGING }, "audience_mismatch"],
    ["no audience, read with require_audience", { aud: undefined }, "audience_missing"],
    ["another issuer", { iss: "https://other-issuer.test/" }, "issuer_mismatch"],
    ["cnf (written by a configuration that did not check it)", { cnf: { jkt: "x" } }, "token_sender_constrained"],
    ["cnf null", { cnf: null }, "token_sender_constrained"],
    ["an ID token's nonce", { nonce: "n" }, "id_token_not_accepted"],
    ["token_type DPoP", { token_type: "DPoP" }, "token_type_not_bearer"],
    ["exp already past", { exp: now() - 600 }, "token_expired"],
    ["nbf in the future", { nbf: now() + 600 }, "token_not_yet_valid"],
    ["exp not a number", { exp: "soon" }, "claim_invalid_exp"],
  ])("T-I3 a KV entry under this gate's own key holding %s is refused by this gate's checks", async (_label, extra, reason) => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: answer() } }); // the AS would say yes: the refusal must come from the entry
    await plant(t, { ...answer(), ...extra }, { endpoint: fixture.introspectionEndpoint, client_id: "gate" });
    const gate = kvGate(fixture, { require_audience: true });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe(reason);
    expect(await calls(fixture)).toHaveLength(0);
  });

  it("T-I3 a planted GitHub entry naming another app is refused (client_mismatch) on the hit", async () => {
    const fixture = new Fixture();
    const t = githubToken("plantedGithub");
    const endpoint = `${fixture.issuerBase}/applications/{client_id}/token`;
    await plant(t, { sub: "1", client_id: "Iv1.other", scope: "items:read", iss: "https://github.com" }, { issuer: "https://github.com", flavor: "github", endpoint, client_id: "Iv1.mine" });
    const gate = makeGate(
      fixture,
      baseConfig(fixture, { issuers: [{ preset: "github", introspection: { client_id: "Iv1.mine", client_secret: "GITHUB_SECRET", endpoint, kv_cache: true } }] }),
      { env: SECRET },
    );
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("client_mismatch");
    expect(await calls(fixture)).toHaveLength(0);
  });

  it("T-I3 entries of the old key scheme (introspection:v1:, issuer and token only) are never read", async () => {
    const fixture = new Fixture();
    const t = token();
    await fixture.serveIntrospection({ [t]: { body: { active: false } } });
    const legacy = await sha256Hex(`${ISSUER}\n${t}`);
    await env.PORTCULLIS_KV.put(`introspection:v1:${legacy}`, JSON.stringify({ v: 1, claims: answer(), expires_at: Date.now() + 300_000 }), { expirationTtl: 300 });
    const gate = kvGate(fixture);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(t) }), 401, "invalid_token");
    expect(lastReason(gate)).toBe("token_inactive");
    expect(await calls(fixture)).toHaveLength(1);
  });
});
