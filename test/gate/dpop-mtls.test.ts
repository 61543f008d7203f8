import { base64url } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { bearer, expectRejected, Fixture, makeKey, mint, originSaw, type Gate, type TestKey } from "../helpers";
import { dpopConfig, dpopGate, dpopHeaders, makeProofKey, proof, URL_OF } from "../dpop";

/**
 * THREATS J6: certificate-bound tokens (RFC 8705): `cnf["x5t#S256"]` (base64url SHA-256 of the client
 * certificate) against what Cloudflare's mTLS puts in `request.cf.tlsClientAuth` (hex SHA-256 fingerprint,
 * presented and verification flags).
 */

let fixture: Fixture;
let issuerKey: TestKey;
const digest = crypto.getRandomValues(new Uint8Array(32));
const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
const x5t = base64url.encode(digest);

beforeAll(async () => {
  fixture = new Fixture();
  issuerKey = await makeKey("ES256");
  await fixture.serveJwks({ keys: [issuerKey.publicJwk] });
});

const tls = (extra: Record<string, string> = {}) => ({ tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: hex, ...extra } });
const mtlsGate = (enabled = true, dpop: "disabled" | "allowed" = "disabled") => dpopGate(fixture, dpopConfig(fixture, { mode: dpop }, { mtls_bound_tokens: enabled }));
const reason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;
const send = (gate: Gate, headers: Record<string, string>, cf?: object) => gate.request("/items/1", { headers, ...(cf ? { cf } : {}) } as RequestInit);

async function refused(gate: Gate, response: Response, why: string) {
  await expectRejected(gate, response, 401, "invalid_token");
  expect(reason(gate)).toBe(why);
}

describe("T-J6 certificate-bound tokens", () => {
  it("T-J6 the certificate the token names, verified by Cloudflare: passes, the origin learns method and thumbprint", async () => {
    const gate = mtlsGate();
    const seen = await originSaw(await send(gate, bearer(await mint(issuerKey, { cnf: { "x5t#S256": x5t } })), tls()));
    expect(seen.headers["x-auth-cnf-method"]).toBe("mtls");
    expect(seen.headers["x-auth-cnf-x5t-s256"]).toBe(x5t);
  });

  it("T-J6 an upper-case hex fingerprint is the same certificate", async () => {
    const gate = mtlsGate();
    await originSaw(await send(gate, bearer(await mint(issuerKey, { cnf: { "x5t#S256": x5t } })), tls({ certFingerprintSHA256: hex.toUpperCase() })));
  });

  it("T-J6 no client certificate: no tlsClientAuth, or certPresented 0", async () => {
    const gate = mtlsGate();
    const token = await mint(issuerKey, { cnf: { "x5t#S256": x5t } });
    await refused(gate, await send(gate, bearer(token)), "mtls_certificate_missing");
    await refused(gate, await send(gate, bearer(token), tls({ certPresented: "0", certVerified: "NONE", certFingerprintSHA256: "" })), "mtls_certificate_missing");
  });

  it("T-J6 a certificate that failed verification or is revoked", async () => {
    const gate = mtlsGate();
    const token = await mint(issuerKey, { cnf: { "x5t#S256": x5t } });
    for (const extra of [{ certVerified: "FAILED:self signed certificate" }, { certVerified: "NONE" }, { certRevoked: "1" }] as Record<string, string>[]) {
      await refused(gate, await send(gate, bearer(token), tls(extra)), "mtls_certificate_unverified");
    }
  });

  it("T-J6 another certificate, or a fingerprint that is not hex SHA-256 (the base64url form, truncated)", async () => {
    const gate = mtlsGate();
    const token = await mint(issuerKey, { cnf: { "x5t#S256": x5t } });
    const other = Array.from(crypto.getRandomValues(new Uint8Array(32)), (byte) => byte.toString(16).padStart(2, "0")).join("");
    for (const fingerprint of [other, x5t, hex.slice(2), `${hex}00`]) {
      await refused(gate, await send(gate, bearer(token), tls({ certFingerprintSHA256: fingerprint })), "mtls_certificate_mismatch");
    }
  });

  it("T-J6 certificate-bound tokens where the issuer does not accept them are refused, certificate or not", async () => {
    const gate = mtlsGate(false);
    await refused(gate, await send(gate, bearer(await mint(issuerKey, { cnf: { "x5t#S256": x5t } })), tls()), "token_sender_constrained");
  });

  it("T-J6 an unbound token with a client certificate passes as a bearer token, no binding reported", async () => {
    const gate = mtlsGate();
    const seen = await originSaw(await send(gate, bearer(await mint(issuerKey)), tls()));
    expect(seen.headers["x-auth-cnf-method"]).toBeUndefined();
  });

  it("T-J6 a token bound to both a DPoP key and a certificate needs both", async () => {
    const gate = mtlsGate(true, "allowed");
    const client = await makeProofKey();
    const token = await mint(issuerKey, { cnf: { jkt: client.jkt, "x5t#S256": x5t } });
    const headers = async () => dpopHeaders(token, await proof(client, { htm: "GET", htu: URL_OF("/items/1"), token }));
    const seen = await originSaw(await send(gate, await headers(), tls()));
    expect(seen.headers["x-auth-cnf-method"]).toBe("dpop mtls");
    await refused(gate, await send(gate, await headers()), "mtls_certificate_missing");
    await refused(gate, await send(gate, bearer(token), tls()), "dpop_bound_token_as_bearer");
  });
});
