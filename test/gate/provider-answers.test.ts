import { describe, expect, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { baseConfig, bearer, expectRejected, Fixture, makeGate, originSaw, type Gate } from "../helpers";
import { githubToken, googleToken } from "../provider-tokens";

/**
 * T-I14: every check the README's "Provider tokens" table promises is made on the provider's answer, and a
 * missing field is a refusal, not a pass: Amazon `iss` and `aud`, Google `aud` and `azp`, GitHub's app.
 */

type Issuer = NonNullable<PortcullisConfig["issuers"]>[number];
const now = () => Math.floor(Date.now() / 1000);
const CLIENT = "1234.apps.googleusercontent.com";
const AMAZON_CLIENT = "amzn1.application-oa2-client.abc";
const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;

async function providerGate(issuer: (fixture: Fixture) => Issuer, answer: Record<string, unknown>) {
  const fixture = new Fixture();
  await fixture.serveIntrospection({ default: { body: answer } });
  const gate = makeGate(fixture, baseConfig(fixture, { issuers: [issuer(fixture)], routes: [{ path: "/**" }] }), { env: { GITHUB_SECRET: "s" } });
  return { fixture, gate };
}

/** A refusal: 401, the reason, nothing at the origin, and exactly one call to the provider (no retry, no fallback). */
async function expectRefused(issuer: (fixture: Fixture) => Issuer, answer: Record<string, unknown>, token: string, reason: string) {
  const { fixture, gate } = await providerGate(issuer, answer);
  await expectRejected(gate, await gate.request("/x", { headers: bearer(token) }), 401, "invalid_token");
  expect(lastReason(gate)).toBe(reason);
  expect((await fixture.stats()).introspectionCalls).toHaveLength(1);
}

describe("T-I14 Amazon tokeninfo: iss and aud are required, not checked only when present", () => {
  const amazon = (fixture: Fixture): Issuer => ({ preset: "amazon", audiences: [AMAZON_CLIENT], introspection: { endpoint: fixture.introspectionEndpoint } });
  const answer = (extra: Record<string, unknown> = {}) => ({ iss: "https://www.amazon.com", user_id: "amzn1.account.K2", aud: AMAZON_CLIENT, app_id: "amzn1.application.1", exp: 3597, iat: now(), ...extra });

  it("T-I14 the complete answer passes", async () => {
    const { gate } = await providerGate(amazon, answer());
    expect((await originSaw(await gate.request("/x", { headers: bearer("Atza|complete") }))).headers["x-auth-sub"]).toBe("amzn1.account.K2");
  });

  it.each([
    ["iss missing", { iss: undefined }, "issuer_missing"],
    ["iss empty", { iss: "" }, "issuer_missing"],
    ["iss not a string", { iss: 7 }, "issuer_missing"],
    ["iss foreign", { iss: "https://evil.example" }, "issuer_mismatch"],
    ["iss of amazon.com without www", { iss: "https://amazon.com" }, "issuer_mismatch"],
    ["aud missing", { aud: undefined }, "audience_missing"],
    ["aud empty", { aud: "" }, "audience_missing"],
    ["aud foreign", { aud: "amzn1.application-oa2-client.other" }, "audience_mismatch"],
    ["iss and aud missing", { iss: undefined, aud: undefined }, "issuer_missing"],
  ])("T-I14 %s -> 401", async (_label, extra, reason) => {
    await expectRefused(amazon, answer(extra), "Atza|token", reason);
  });
});

describe("T-I14 Google tokeninfo: aud must be present and listed, azp listed when present", () => {
  const google = (fixture: Fixture): Issuer => ({ preset: "google", audiences: [CLIENT, "5678.apps.googleusercontent.com"], introspection: { endpoint: fixture.introspectionEndpoint } });
  const answer = (extra: Record<string, unknown> = {}) => ({ azp: CLIENT, aud: CLIENT, sub: "1076", scope: "openid", exp: String(now() + 3000), ...extra });

  it.each([
    ["aud and azp listed", {}],
    ["aud and azp listed, different", { azp: "5678.apps.googleusercontent.com" }],
    ["no azp, aud listed", { azp: undefined }],
  ])("T-I14 %s -> 200", async (_label, extra) => {
    const { gate } = await providerGate(google, answer(extra));
    expect((await gate.request("/x", { headers: bearer(googleToken("ok")) })).status).toBe(200);
  });

  it.each([
    ["aud missing (azp listed)", { aud: undefined }, "audience_missing"],
    ["aud empty (azp listed)", { aud: "" }, "audience_missing"],
    ["aud foreign (azp listed)", { aud: "9999.apps.googleusercontent.com" }, "audience_mismatch"],
    ["azp foreign (aud listed)", { azp: "9999.apps.googleusercontent.com" }, "audience_mismatch"],
    ["both foreign", { aud: "9999.apps.googleusercontent.com", azp: "9999.apps.googleusercontent.com" }, "audience_mismatch"],
    ["both missing", { aud: undefined, azp: undefined }, "audience_missing"],
  ])("T-I14 %s -> 401", async (_label, extra, reason) => {
    await expectRefused(google, answer(extra), googleToken("x"), reason);
  });
});

describe("T-I14 GitHub token check: the answer must name our app", () => {
  const github = (fixture: Fixture): Issuer => ({
    preset: "github",
    introspection: { client_id: "Iv1.abc123", client_secret: "GITHUB_SECRET", endpoint: `${fixture.issuerBase}/applications/{client_id}/token` },
  });
  const answer = (extra: Record<string, unknown> = {}) => ({ scopes: [], user: { id: 1, login: "o" }, app: { client_id: "Iv1.abc123" }, expires_at: null, ...extra });

  it.each([
    ["app missing", { app: undefined }],
    ["app.client_id missing", { app: { name: "x" } }],
    ["app.client_id of another app", { app: { client_id: "Iv1.other" } }],
    ["app.client_id not a string", { app: { client_id: 1 } }],
    ["app is a string", { app: "Iv1.abc123" }],
  ])("T-I14 %s -> 401 client_mismatch", async (_label, extra) => {
    await expectRefused(github, answer(extra), githubToken("app"), "client_mismatch");
  });
});
