import { beforeAll, describe, expect, it } from "vitest";
import { issueNonce } from "../../src/lib/nonce";
import { expectRejected, Fixture, ISSUER, originSaw, type Gate, type TestKey } from "../helpers";
import { boundToken, dpopConfig, dpopGate, dpopHeaders, proof, URL_OF, type ProofKey, dpopFixture } from "../dpop";

/**
 * THREATS J5: server nonces (RFC 9449 section 9), derived from a secret and a time window: a gate that
 * asks for a nonce answers 401 use_dpop_nonce with one; a stale or foreign nonce is refused; any gate
 * instance holding the secret accepts another's without shared state.
 */

const SECRET = "n0nce-secret-0123456789abcdefghijkl";
const LIFETIME = 300;
let fixture: Fixture;
let issuerKey: TestKey;
let client: ProofKey;

beforeAll(async () => {
  ({ fixture, issuerKey, client } = await dpopFixture());
});

const gateAt = (now: () => number, secret: string | null = SECRET) =>
  dpopGate(fixture, dpopConfig(fixture, { mode: "allowed", nonce: { secret: "DPOP_NONCE_SECRET", lifetime: LIFETIME } }), { now, env: { DPOP_NONCE_SECRET: secret } });
const reason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;

async function send(gate: Gate, nonce: string | undefined, at = Date.now()) {
  const token = await boundToken(issuerKey, client, { iat: Math.floor(at / 1000), exp: Math.floor(at / 1000) + 300 });
  const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, iat: Math.floor(at / 1000), ...(nonce === undefined ? {} : { nonce }) });
  return gate.request("/items/1", { headers: dpopHeaders(token, value) });
}

async function expectNonceAsked(gate: Gate, response: Response, why: string): Promise<string> {
  const fresh = response.headers.get("dpop-nonce");
  const { challenge } = await expectRejected(gate, response, 401, "use_dpop_nonce");
  expect(challenge).toContain('DPoP realm="test-api", algs="ES256 EdDSA RS256 PS256", error="use_dpop_nonce"');
  expect(reason(gate)).toBe(why);
  expect(fresh).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
  // A browser-based client reads the nonce cross-origin (THREATS K3 applies to DPoP challenges too).
  expect((response.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/\s*,\s*/)).toContain("dpop-nonce");
  return fresh!;
}

describe("T-J5 DPoP nonces", () => {
  it("T-J5 a proof without a nonce is 401 use_dpop_nonce with DPoP-Nonce; the retry with it passes", async () => {
    const gate = gateAt(Date.now);
    const nonce = await expectNonceAsked(gate, await send(gate, undefined), "dpop_nonce_missing");
    await originSaw(await send(gate, nonce));
  });

  it("T-J5 a nonce issued by one gate instance is accepted by another (no shared state, no round trip)", async () => {
    const first = gateAt(Date.now);
    const nonce = await expectNonceAsked(first, await send(first, undefined), "dpop_nonce_missing");
    const second = gateAt(Date.now);
    await originSaw(await send(second, nonce));
  });

  it("T-J5 a nonce stays good through the next window and is stale after it", async () => {
    const start = Math.floor(Date.now() / 1000 / LIFETIME) * LIFETIME * 1000 + 1_000;
    const nonce = await issueNonce(SECRET, ISSUER, LIFETIME, start);
    await originSaw(await send(gateAt(() => start), nonce, start));
    const next = start + LIFETIME * 1000;
    await originSaw(await send(gateAt(() => next), nonce, next));
    const later = start + 2 * LIFETIME * 1000;
    const gate = gateAt(() => later);
    const fresh = await expectNonceAsked(gate, await send(gate, nonce, later), "dpop_nonce_invalid");
    expect(fresh).not.toBe(nonce);
  });

  it("T-J5 a nonce from the future window is refused", async () => {
    const now = Date.now();
    const gate = gateAt(() => now);
    await expectNonceAsked(gate, await send(gate, await issueNonce(SECRET, ISSUER, LIFETIME, now + LIFETIME * 1000), now), "dpop_nonce_invalid");
  });

  it("T-J5 foreign nonces are refused: another secret, another issuer, a forged MAC, garbage", async () => {
    const now = Date.now();
    const gate = gateAt(() => now);
    const own = await issueNonce(SECRET, ISSUER, LIFETIME, now);
    const forged = `${own.split(".")[0]}.${"A".repeat(22)}`;
    for (const nonce of [
      await issueNonce("another-secret-0123456789abcdefghij", ISSUER, LIFETIME, now),
      await issueNonce(SECRET, "https://other.test/", LIFETIME, now),
      forged,
      "nonce",
      "",
      `${own}x`,
    ]) {
      await expectNonceAsked(gate, await send(gate, nonce, now), "dpop_nonce_invalid");
    }
  });

  it("T-J5 a nonce that is not a string is refused", async () => {
    const gate = gateAt(Date.now);
    const token = await boundToken(issuerKey, client);
    const value = await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, nonce: 12 as unknown as string });
    await expectNonceAsked(gate, await gate.request("/items/1", { headers: dpopHeaders(token, value) }), "dpop_nonce_invalid");
  });

  it("T-J5 the nonce secret missing or shorter than 32 characters: 500, never an unchecked proof", async () => {
    for (const secret of [null, "short"]) {
      const gate = gateAt(Date.now, secret);
      await expectRejected(gate, await send(gate, "whatever"), 500, "server_error");
      expect(reason(gate)).toBe("dpop_nonce_secret_missing");
    }
  });

  it("T-J5 issuers without nonces accept proofs without one", async () => {
    const gate = dpopGate(fixture, dpopConfig(fixture));
    await originSaw(await send(gate, undefined));
  });
});
