import { describe, expect, it } from "vitest";
import { AUDIENCE, baseConfig, bearer, expectRejected, ISSUER, makeGate, mint, nowSeconds, originSaw, setup, signRaw } from "../helpers";

/** Threat catalogue section C: claims. Clock skew is the issuer's `clock_tolerance` (30 s by default). */

describe("C: claims", () => {
  it("T-C1 exp: past beyond skew refused, within skew accepted, string or missing refused", async () => {
    const { key, gate } = await setup();
    const now = nowSeconds();
    const expired = await mint(key, { exp: now - 31, iat: now - 600 });
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(expired) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("token_expired");
    const withinSkew = await mint(key, { exp: now - 20, iat: now - 600 });
    expect((await gate.request("/items/1", { headers: bearer(withinSkew) })).status).toBe(200);

    const { key: k2, gate: g2 } = await setup();
    const asString = await mint(k2, { exp: String(now + 300) });
    await expectRejected(g2, await g2.request("/items/1", { headers: bearer(asString) }), 401, "invalid_token");
    const missing = await mint(k2, { exp: undefined });
    await expectRejected(g2, await g2.request("/items/1", { headers: bearer(missing) }), 401, "invalid_token");
  });

  it("T-C2 nbf or iat in the future beyond skew is refused; within skew accepted", async () => {
    const { key, gate } = await setup();
    const now = nowSeconds();
    for (const claims of [{ nbf: now + 120 }, { iat: now + 120 }]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, claims)) }), 401, "invalid_token");
    }
    expect(gate.logs.filter((l) => l.event === "decision").map((l) => l.reason)).toEqual(["token_not_yet_valid", "iat_in_future"]);
    const { key: k2, gate: g2 } = await setup();
    expect((await g2.request("/items/1", { headers: bearer(await mint(k2, { nbf: now + 10, iat: now + 10 })) })).status).toBe(200);
  });

  it("T-C3 aud mismatch, aud: [] and missing aud are refused; an array containing the audience is accepted", async () => {
    const { key, gate } = await setup();
    for (const aud of ["https://other.test", [], undefined, ["https://other.test"], `${AUDIENCE}/`]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { aud })) }), 401, "invalid_token");
    }
    const { key: k2, gate: g2 } = await setup();
    const multi = await mint(k2, { aud: ["https://other.test", AUDIENCE] });
    expect((await g2.request("/items/1", { headers: bearer(multi) })).status).toBe(200);
  });

  it("T-C4 iss differing by trailing slash or case, or as an array, is refused: comparison is exact", async () => {
    const { key, gate } = await setup();
    for (const iss of [ISSUER.slice(0, -1), ISSUER.toUpperCase(), "HTTPS://issuer.test/", [ISSUER], `${ISSUER} `]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { iss })) }), 401, "invalid_token");
    }
  });

  it.each([
    ["scope string with look-alikes", { scope: "admin:read administrator" }],
    ["scp array with other case", { scope: undefined, scp: ["Admin"] }],
    ["scope with prefix", { scope: "xadmin admin2" }],
    ["scp string with spaces", { scope: undefined, scp: "read admin:write" }],
    ["no scope at all", { scope: undefined }],
  ])("T-C5 %s does not grant admin: 403 with scope=\"admin\"", async (_label, claims) => {
    const { key, gate } = await setup();
    const response = await gate.request("/admin/panel", { headers: bearer(await mint(key, claims)) });
    const { challenge, body } = await expectRejected(gate, response, 403, "insufficient_scope");
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="admin"');
    expect(body).toEqual({ error: "insufficient_scope", error_description: expect.any(String) });
  });

  it("T-C5 whole, case-sensitive scope tokens from scope and scp are granted", async () => {
    const { key, gate } = await setup();
    for (const claims of [{ scope: "read admin" }, { scope: undefined, scp: ["admin"] }, { scope: undefined, scp: "x admin" }]) {
      expect((await gate.request("/admin/panel", { headers: bearer(await mint(key, claims)) })).status).toBe(200);
    }
  });

  it("T-C6 claims named __proto__ / constructor and duplicate members cause no prototype pollution", async () => {
    const fixture = (await setup()).fixture;
    const { key } = await setup();
    await fixture.serveJwks({ keys: [key.publicJwk] });
    const gate = makeGate(
      fixture,
      baseConfig(fixture, { forward: { claim_headers: { "x-auth-polluted": "__proto__.polluted", "x-auth-ctor": "constructor.name", "x-auth-role": "role" } } }),
    );
    const now = nowSeconds();
    // Raw JSON so that `__proto__` is a real own member and `role` appears twice.
    const payload = `{"iss":"${ISSUER}","aud":"${AUDIENCE}","sub":"u","exp":${now + 300},"iat":${now},"scope":"items:read","__proto__":{"polluted":"yes","isAdmin":true},"constructor":{"name":"evil"},"role":"user","role":"admin"}`;
    const token = await signRaw(key, { alg: "ES256", typ: "at+jwt", kid: key.kid }, JSON.parse(payload));
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(token) }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(seen.headers["x-auth-polluted"]).toBe("yes"); // an own member, read as data, not via the prototype
    expect(seen.headers["x-auth-ctor"]).toBe("evil");
    expect(seen.headers["x-auth-role"]).toBe("admin"); // JSON.parse keeps the last duplicate, as jose does
    // A path that would need the prototype chain resolves to nothing.
    const plain = await signRaw(key, { alg: "ES256", typ: "at+jwt", kid: key.kid }, { iss: ISSUER, aud: AUDIENCE, sub: "u", exp: now + 300, scope: "items:read" });
    const seenPlain = await originSaw(await gate.request("/items/1", { headers: bearer(plain) }));
    expect(seenPlain.headers["x-auth-ctor"]).toBeUndefined();
  });

  it("T-C7 a DPoP-bound (cnf.jkt) or mTLS-bound token presented as plain Bearer is refused", async () => {
    const { key, gate } = await setup();
    for (const cnf of [{ jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }, { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }, "bogus"]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(await mint(key, { cnf })) }), 401, "invalid_token");
    }
    expect(gate.logs.filter((l) => l.reason === "token_sender_constrained")).toHaveLength(3);
  });
});
