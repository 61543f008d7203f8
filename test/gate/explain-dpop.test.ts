import { beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { explainWithProof, type ExplainRequest } from "../../src/pipeline/explain";
import { expectRejected, Fixture, makeKey, mint, originSaw, type TestKey } from "../helpers";
import { boundToken, dpopConfig, dpopGate, dpopHeaders, makeProofKey, proof, URL_OF, type ProofKey } from "../dpop";

/**
 * THREATS J4-J6 from explain's side: `explainWithProof` makes the gate's proof checks (validate/sender.ts
 * `checkProof`), so what it reports of a proof is what the gate decides; only the replay check, a client
 * certificate and (without the secret) the nonce are listed as not checked. Each case is sent to the gate too.
 */

const SECRET = "explain-nonce-secret-0123456789abcdef";
let fixture: Fixture;
let issuerKey: TestKey;
let client: ProofKey;

beforeAll(async () => {
  fixture = new Fixture();
  issuerKey = await makeKey("ES256");
  await fixture.serveJwks({ keys: [issuerKey.publicJwk] });
  client = await makeProofKey();
});

async function explained(config: PortcullisConfig, input: Omit<ExplainRequest, "method" | "url">) {
  const parsed = parseConfig(config);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return explainWithProof(parsed.config, { method: "GET", url: URL_OF("/items/1"), ...input });
}

const proofCheck = (checks: { check: string; passed: boolean; reason?: string }[]) => checks.find((check) => check.check.startsWith("DPoP proof"));

describe("T-J4 explain checks the DPoP proof as the gate does", () => {
  it("T-J4 a valid proof: the proof check passes, only its replay check is not checked, and the gate forwards", async () => {
    const config = dpopConfig(fixture);
    const token = await boundToken(issuerKey, client);
    const headers = dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }));
    const result = await explained(config, { headers });
    expect(result).toMatchObject({ decision: "allow", reason: "requirements_met" });
    expect(proofCheck(result.token!.checks)).toEqual({ check: "DPoP proof: typ, alg, jwk, signature, jti, htm, htu, iat, ath, key matches cnf.jkt", passed: true });
    expect(result.token!.not_checked.filter((item) => item.startsWith("DPoP"))).toEqual(["DPoP proof replay check (whether its jti was used before: the replay store)"]);
    await originSaw(await dpopGate(fixture, config).request("/items/1", { headers }));
  });

  it("T-J4 a proof for another URL, method or token, or by another key: explain gives the gate's refusal", async () => {
    const config = dpopConfig(fixture);
    const token = await boundToken(issuerKey, client);
    const cases: [Promise<string>, string, string][] = [
      [proof(client, { htm: "GET", htu: URL_OF("/items/2"), token }), "dpop_proof_htu_mismatch", "invalid_dpop_proof"],
      [proof(client, { htm: "POST", htu: URL_OF("/items/1"), token }), "dpop_proof_htm_mismatch", "invalid_dpop_proof"],
      [proof(client, { htm: "GET", htu: URL_OF("/items/1"), token: "another-token" }), "dpop_proof_ath_mismatch", "invalid_dpop_proof"],
      [makeProofKey().then((other) => proof(other, { htm: "GET", htu: URL_OF("/items/1"), token })), "dpop_key_mismatch", "invalid_token"],
    ];
    for (const [signed, reason, error] of cases) {
      const headers = dpopHeaders(token, await signed);
      const result = await explained(config, { headers });
      expect(result, reason).toMatchObject({ decision: "deny", status: 401, reason });
      expect(proofCheck(result.token!.checks)).toMatchObject({ passed: false, reason });
      const gate = dpopGate(fixture, config);
      await expectRejected(gate, await gate.request("/items/1", { headers }), 401, error);
      expect(gate.logs.filter((line) => line.event === "decision").at(-1)?.reason).toBe(reason);
    }
  });

  it("T-J4 --token with a DPoP header is presented with the DPoP scheme, so the proof is checked", async () => {
    const token = await boundToken(issuerKey, client);
    const result = await explained(dpopConfig(fixture), { token, headers: { dpop: await proof(client, { htm: "GET", htu: URL_OF("/items/2"), token }) } });
    expect(result).toMatchObject({ decision: "deny", reason: "dpop_proof_htu_mismatch" });
    expect((await explained(dpopConfig(fixture), { token })).reason).toBe("dpop_bound_token_as_bearer");
  });
});

describe("T-J5 explain and DPoP nonces", () => {
  const config = () => dpopConfig(fixture, { mode: "allowed", nonce: { secret: "DPOP_NONCE_SECRET", lifetime: 300 } });

  it("T-J5 with the nonce secret a proof without a nonce is refused as by the gate; without it the nonce is listed as not checked", async () => {
    const token = await boundToken(issuerKey, client);
    const headers = dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }));
    expect(await explained(config(), { headers, env: { DPOP_NONCE_SECRET: SECRET } })).toMatchObject({ decision: "deny", status: 401, reason: "dpop_nonce_missing" });
    const gate = dpopGate(fixture, config(), { env: { DPOP_NONCE_SECRET: SECRET } });
    await expectRejected(gate, await gate.request("/items/1", { headers }), 401, "use_dpop_nonce");
    const unknown = await explained(config(), { headers });
    expect(unknown).toMatchObject({ decision: "allow" });
    expect(unknown.token!.not_checked).toContain("DPoP nonce (the nonce secret was not given)");
  });
});

describe("T-J6 explain and certificate-bound tokens", () => {
  it("T-J6 the client certificate is listed as not checked and assumed; a certificate-bound token where mTLS is off is refused", async () => {
    const x5t = "A".repeat(43);
    const token = await mint(issuerKey, { cnf: { "x5t#S256": x5t } });
    const on = await explained(dpopConfig(fixture, { mode: "disabled" }, { mtls_bound_tokens: true }), { headers: { authorization: `Bearer ${token}` } });
    expect(on).toMatchObject({ decision: "allow" });
    expect(on.token!.not_checked).toContain("client certificate (mTLS: the TLS connection's certificate)");
    const off = await explained(dpopConfig(fixture, { mode: "disabled" }), { headers: { authorization: `Bearer ${token}` } });
    expect(off).toMatchObject({ decision: "deny", reason: "token_sender_constrained" });
  });
});
