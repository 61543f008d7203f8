import { env, evictDurableObject, listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { importJWK, type JWK } from "jose";
import { beforeAll, describe, expect, inject, it } from "vitest";
import type { DpopReplayStore } from "../../src/validate/dpop-replay-store";
import { bearer, expectRejected, Fixture, makeGate, mint, originSaw, serviceGate, type Gate, type TestKey } from "../helpers";
import { isolateBConfig } from "../setup/isolate-b-config";
import { boundToken, dpopConfig, dpopGate, dpopHeaders, makeProofKey, proof, URL_OF, type ProofKey, dpopFixture } from "../dpop";

/**
 * THREATS J3: a proof is accepted once. The replay store is the real Durable Object (wrangler.toml's
 * PORTCULLIS_DPOP namespace, run by workerd through the vitest plugin), not a mock.
 */

const namespace = (env as unknown as { PORTCULLIS_DPOP: DurableObjectNamespace<DpopReplayStore> }).PORTCULLIS_DPOP;
let fixture: Fixture;
let issuerKey: TestKey;

beforeAll(async () => {
  ({ fixture, issuerKey } = await dpopFixture());
});

const gateOf = (options: Parameters<typeof dpopGate>[2] = {}) => dpopGate(fixture, dpopConfig(fixture), options);
const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;

async function presentation(client: ProofKey, path = "/items/1") {
  const token = await boundToken(issuerKey, client);
  return dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF(path), token }));
}

describe("T-J3 a proof is accepted once", () => {
  it("T-J3 the same proof twice: the first passes, the second is 401 invalid_dpop_proof (replayed)", async () => {
    const gate = gateOf();
    const headers = await presentation(await makeProofKey());
    await originSaw(await gate.request("/items/1", { headers }));
    const { challenge } = await expectRejected(gate, await gate.request("/items/1", { headers }), 401, "invalid_dpop_proof");
    expect(challenge).toContain('DPoP realm="test-api", algs="ES256 EdDSA RS256 PS256", error="invalid_dpop_proof"');
    expect(lastReason(gate)).toBe("dpop_proof_replayed");
  });

  it("T-J3 twenty concurrent requests with one proof (Promise.all): exactly one succeeds", async () => {
    const gate = gateOf();
    const headers = await presentation(await makeProofKey());
    const responses = await Promise.all(Array.from({ length: 20 }, () => gate.request("/items/1", { headers })));
    expect(responses.map((response) => response.status).sort()).toEqual([200, ...Array(19).fill(401)]);
    for (const response of responses.filter((r) => r.status === 401)) await expectRejected(gate, response, 401, "invalid_dpop_proof");
  });

  it("T-J3 through two gate instances with separate memory (two isolates' worth of state) sharing the namespace: exactly one success, in turn and concurrently", async () => {
    const [first, second] = [gateOf(), gateOf()];
    const headers = await presentation(await makeProofKey());
    await originSaw(await first.request("/items/1", { headers }));
    await expectRejected(second, await second.request("/items/1", { headers }), 401, "invalid_dpop_proof");

    const racing = await presentation(await makeProofKey());
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? first : second).request("/items/1", { headers: racing })));
    expect(responses.filter((response) => response.status === 200)).toHaveLength(1);
    expect(responses.filter((response) => response.status === 401)).toHaveLength(9);
  });

  it("T-J3 the record is in the object's storage, not its memory: after the object is evicted the proof is still refused", async () => {
    const gate = gateOf();
    const client = await makeProofKey();
    const headers = await presentation(client);
    await originSaw(await gate.request("/items/1", { headers }));
    await evictDurableObject(namespace.get(namespace.idFromName(client.jkt)));
    await expectRejected(gate, await gate.request("/items/1", { headers }), 401, "invalid_dpop_proof");
  });

  it("T-J3 new proofs by the same key keep passing; each key has its own object (sharded by jkt)", async () => {
    const gate = gateOf();
    const [a, b] = [await makeProofKey(), await makeProofKey()];
    for (let i = 0; i < 3; i++) {
      await originSaw(await gate.request("/items/1", { headers: await presentation(a) }));
      await originSaw(await gate.request("/items/1", { headers: await presentation(b) }));
    }
    const ids = (await listDurableObjectIds(namespace)).map((id) => id.toString());
    expect(ids).toContain(namespace.idFromName(a.jkt).toString());
    expect(ids).toContain(namespace.idFromName(b.jkt).toString());
  });

  it("T-J3 one jti under two keys is two proofs (the record is per key and jti)", async () => {
    const gate = gateOf();
    for (const client of [await makeProofKey(), await makeProofKey()]) {
      const token = await boundToken(issuerKey, client);
      await originSaw(await gate.request("/items/1", { headers: dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, jti: "shared-jti" })) }));
    }
  });

  it("T-J3 a refused proof (wrong htu) does not use up its jti: the store is asked only after every other check", async () => {
    const gate = gateOf();
    const client = await makeProofKey();
    const token = await boundToken(issuerKey, client);
    await expectRejected(gate, await gate.request("/items/1", { headers: dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/2"), token, jti: "j-1" })) }), 401, "invalid_dpop_proof");
    await originSaw(await gate.request("/items/1", { headers: dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token, jti: "j-1" })) }));
  });
});

describe("T-J3 the store object", () => {
  it("T-J3 claim is first-time-only until the entry expires; the alarm deletes expired entries", async () => {
    const stub = namespace.get(namespace.idFromName(`unit-${crypto.randomUUID()}`));
    const now = Date.now();
    expect(await stub.claim("a", now, now + 60_000)).toBe(true);
    expect(await stub.claim("a", now, now + 60_000)).toBe(false);
    expect(await stub.claim("a", now + 59_000, now + 60_000)).toBe(false);
    // Past its expiry the proof would be refused by its iat anyway: the jti may be recorded again.
    expect(await stub.claim("a", now + 60_001, now + 120_000)).toBe(true);
    expect(await stub.claim("old", now - 10_000, now - 5_000)).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rows = await runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ jti: string }>("SELECT jti FROM seen ORDER BY jti").toArray().map((row) => row.jti));
    expect(rows).toEqual(["a"]);
    // Rescheduled for what is left.
    expect(await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm())).not.toBeNull();
  });

  it("T-J3 concurrent claims of one jti inside one object: exactly one true", async () => {
    const stub = namespace.get(namespace.idFromName(`unit-${crypto.randomUUID()}`));
    const now = Date.now();
    const results = await Promise.all(Array.from({ length: 50 }, () => stub.claim("same", now, now + 60_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});

describe("T-J3 the store unavailable: fail closed", () => {
  const throwing = {
    idFromName: (name: string) => namespace.idFromName(name),
    get: () => ({ claim: async () => Promise.reject(new Error("Durable Object reset because its code was updated")) }),
  };

  it("T-J3 a store that throws: 503 with Retry-After, logged without the token or proof", async () => {
    const gate = gateOf({ env: { PORTCULLIS_DPOP: throwing } });
    const headers = await presentation(await makeProofKey());
    const response = await gate.request("/items/1", { headers });
    expect(response.headers.get("retry-after")).toBe("1");
    await expectRejected(gate, response, 503, "temporarily_unavailable");
    expect(gate.logs).toContainEqual({ event: "dpop_replay_store", outcome: "error", reason: "unreachable" });
    const logged = JSON.stringify(gate.logs);
    expect(logged).not.toContain(headers.authorization!.slice(5));
    expect(logged).not.toContain(headers.dpop!);
  });

  it("T-J3 a store that never answers: 503 with Retry-After after the 5 s store timeout, never forwarded", async () => {
    const hanging = { idFromName: throwing.idFromName, get: () => ({ claim: () => new Promise<boolean>(() => {}) }) };
    const gate = gateOf({ env: { PORTCULLIS_DPOP: hanging } });
    const headers = await presentation(await makeProofKey());
    const started = Date.now();
    const response = await gate.request("/items/1", { headers });
    const waited = Date.now() - started;
    expect(response.headers.get("retry-after")).toBe("1");
    await expectRejected(gate, response, 503, "temporarily_unavailable");
    expect(gate.logs).toContainEqual({ event: "dpop_replay_store", outcome: "error", reason: "timeout" });
    expect(waited).toBeGreaterThanOrEqual(4_900);
    expect(waited).toBeLessThan(15_000);
  }, 20_000);

  it("T-J3 no binding: 500, logged with the binding name", async () => {
    const gate = gateOf({ env: { PORTCULLIS_DPOP: undefined } });
    await expectRejected(gate, await gate.request("/items/1", { headers: await presentation(await makeProofKey()) }), 500, "server_error");
    expect(gate.logs).toContainEqual({ event: "dpop_replay_store", outcome: "error", reason: "binding_missing", binding: "PORTCULLIS_DPOP" });
  });

  it("T-J3 bearer requests never touch the store: they pass with the store down", async () => {
    const gate = gateOf({ env: { PORTCULLIS_DPOP: throwing } });
    await originSaw(await gate.request("/items/1", { headers: bearer(await mint(issuerKey)) }));
  });
});

describe("T-J3 two isolates: the test Worker and the real Worker in a second isolate (GATE_ISOLATE_B) share the store", () => {
  // Isolate B (test/setup/isolate-b.ts) trusts the Worker-entry issuer (`/self/jwks`, key self-1); the gate
  // here gets the same configuration, so the one proof is valid for both and only the store can tell.
  const URL_B = "https://api.example.test/v1/items/1";
  const config = isolateBConfig(inject("issuerUrl"));
  let selfKey: TestKey;

  beforeAll(async () => {
    const jwk = JSON.parse(inject("selfPrivateJwk")) as JWK;
    selfKey = { alg: "ES256", kid: "self-1", privateKey: (await importJWK(jwk, "ES256")) as CryptoKey, publicJwk: {} };
  });

  async function presentationB() {
    const client = await makeProofKey();
    const token = await boundToken(selfKey, client, { iss: config.issuers[0]!.issuer, aud: config.issuers[0]!.audiences[0] });
    return dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_B, token }));
  }

  const gates = () => {
    const fixture = new Fixture();
    return { here: makeGate(fixture, config), there: serviceGate(fixture, env.GATE_ISOLATE_B) };
  };

  it("T-J3 the same proof through two isolates: exactly one accepted, in turn (either first)", async () => {
    const { here, there } = gates();
    const first = await presentationB();
    await originSaw(await there.request(URL_B, { headers: first }));
    await expectRejected(here, await here.request(URL_B, { headers: first }), 401, "invalid_dpop_proof");
    expect(lastReason(here)).toBe("dpop_proof_replayed");

    const second = await presentationB();
    await originSaw(await here.request(URL_B, { headers: second }));
    const { challenge } = await expectRejected(there, await there.request(URL_B, { headers: second }), 401, "invalid_dpop_proof");
    // The refusal is isolate B's own (its realm), not an error on the way to it.
    expect(challenge).toContain('DPoP realm="isolate-b"');
  });

  it("T-J3 the same proof through two isolates concurrently (Promise.all): exactly one accepted", async () => {
    const { here, there } = gates();
    for (let round = 0; round < 5; round++) {
      const headers = await presentationB();
      const responses = await Promise.all([here.request(URL_B, { headers }), there.request(URL_B, { headers })]);
      expect(responses.map((response) => response.status).sort()).toEqual([200, 401]);
      const refused = responses.findIndex((response) => response.status === 401);
      await expectRejected([here, there][refused]!, responses[refused]!, 401, "invalid_dpop_proof");
      await originSaw(responses[1 - refused]!);
    }
  });
});
