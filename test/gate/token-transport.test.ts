import { describe, expect, it } from "vitest";
import { baseConfig, bearer, expectRejected, makeKey, mint, originSaw, setup } from "../helpers";

/** Threat catalogue section D: transport and syntax (RFC 6750 section 2 and 3). */

describe("D: transport and syntax", () => {
  it("T-D1 no credentials: 401 with a bare Bearer challenge naming the configured realm, never the URL", async () => {
    const { gate } = await setup();
    const response = await gate.request("/items/1?x=1", { headers: { host: "evil.example" } });
    const { challenge, body } = await expectRejected(gate, response, 401);
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
    expect(challenge).not.toContain("error=");
    expect(body.error).not.toBe("invalid_token");
    expect(response.headers.get("cache-control")).toBe("no-store");
  });

  it("T-D1 a non-Bearer scheme is no Bearer credential: bare challenge", async () => {
    const { gate } = await setup();
    const { challenge } = await expectRejected(gate, await gate.request("/items/1", { headers: { authorization: "Basic dXNlcjpwYXNz" } }), 401);
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
  });

  it("T-D1 with resource_metadata configured every challenge carries it (RFC 9728 5.1) and the document is served", async () => {
    // A resource covers the requests at its identifier's path and below (issue 15): the root covers all.
    const resource_metadata = { resource: "https://api.test", authorization_servers: ["https://issuer.test/"], scopes_supported: ["items:read"] };
    const { key, gate } = await setup((f) => baseConfig(f, { resource_metadata }));
    const url = "https://api.test/.well-known/oauth-protected-resource";
    const none = await expectRejected(gate, await gate.request("/items/1"), 401);
    expect(none.challenge).toBe(`Bearer realm="test-api", scope="items:read", resource_metadata="${url}"`);
    const bad = await expectRejected(gate, await gate.request("/items/1", { headers: bearer("abc") }), 401, "invalid_token");
    expect(bad.challenge).toContain(`resource_metadata="${url}"`);
    const scope = await expectRejected(gate, await gate.request("/admin/1", { headers: bearer(await mint(key)) }), 403, "insufficient_scope");
    expect(scope.challenge).toContain(`resource_metadata="${url}"`);
    const doc = await gate.request("/.well-known/oauth-protected-resource");
    expect(doc.status).toBe(200);
    expect(await doc.json()).toEqual({
      resource: "https://api.test",
      authorization_servers: ["https://issuer.test/"],
      bearer_methods_supported: ["header"],
      scopes_supported: ["items:read"],
    });
  });

  it("T-D2 the scheme is case-insensitive: `bearer` and `BEARER` are accepted", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
      expect((await gate.request("/items/1", { headers: { authorization: `${scheme} ${token}` } })).status).toBe(200);
    }
  });

  it("T-D3 Bearer with nothing after it, extra spaces, or characters outside b64token: 400", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    for (const authorization of ["Bearer", "Bearer ", `Bearer  ${token}`, `Bearer ${token} x`, "Bearer a\u00e9b", "Bearer a\tb", "Bearer a=b", `Bearer "${token}"`]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: { authorization } }), 400, "invalid_request");
    }
  });

  it("T-D3 syntactically valid but not a 3-part JWS (2 or 4 parts): 401", async () => {
    const { key, gate } = await setup();
    const [h, p, s] = (await mint(key)).split(".");
    for (const token of [`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, `.${p}.${s}`]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(token) }), 401, "invalid_token");
    }
  });

  it("T-D4 token in the header and in ?access_token=, or two Authorization headers: 400", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { token: { allow_query: true } }));
    const token = await mint(key);
    await expectRejected(gate, await gate.request(`/items/1?access_token=${token}`, { headers: bearer(token) }), 400, "invalid_request");
    const twice = new Headers();
    twice.append("authorization", `Bearer ${token}`);
    twice.append("authorization", `Bearer ${token}`);
    expect(twice.get("authorization")).toContain(", ");
    await expectRejected(gate, await gate.request("/items/1", { headers: twice }), 400, "invalid_request");
    await expectRejected(gate, await gate.request(`/items/1?access_token=${token}&access_token=${token}`), 400, "invalid_request");
    const mixed = new Headers();
    mixed.append("authorization", "Basic dXNlcjpwYXNz");
    mixed.append("authorization", `Bearer ${token}`);
    await expectRejected(gate, await gate.request("/items/1", { headers: mixed }), 400, "invalid_request");
  });

  it("T-D4 header plus query token is 400 even when the query method is disabled", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    await expectRejected(gate, await gate.request(`/items/1?access_token=${token}`, { headers: bearer(token) }), 400, "invalid_request");
  });

  it("T-D5 a token only in the query string is not read unless enabled, and never echoed or logged", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    const { challenge, body } = await expectRejected(gate, await gate.request(`/items/1?access_token=${token}`), 401);
    expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
    expect(JSON.stringify(body)).not.toContain(token.slice(0, 20));
    expect(JSON.stringify(gate.logs)).not.toContain(token.slice(0, 20));

    const enabled = await setup((f) => baseConfig(f, { token: { allow_query: true } }));
    const queryToken = await mint(enabled.key);
    const seen = await originSaw(await enabled.gate.request(`/items/1?a=1&access_token=${queryToken}&b=2`));
    // Authorization is stripped by default, so the query copy of the token is removed too.
    expect(seen.path).toBe("/items/1?a=1&b=2");
    expect(JSON.stringify(enabled.gate.logs)).not.toContain(queryToken.slice(0, 20));
  });

  it("T-D6 a token over the size limit is refused before any decoding or key fetch", async () => {
    const { gate, fixture } = await setup((f) => baseConfig(f, { token: { max_length: 1024 } }));
    const huge = "a".repeat(1025);
    await expectRejected(gate, await gate.request("/items/1", { headers: bearer(huge) }), 401, "invalid_token");
    expect(gate.logs.at(-1)?.reason).toBe("token_too_large");
    expect((await fixture.stats()).jwksFetches).toBe(0);
    // Default limit is 8 KiB.
    const { gate: g2 } = await setup();
    await expectRejected(g2, await g2.request("/items/1", { headers: bearer("a".repeat(8193)) }), 401, "invalid_token");
  });

  it("T-D7 an opaque token with introspection off is 401 invalid_token, not 500", async () => {
    const { gate, fixture } = await setup();
    for (const opaque of ["2YotnFZFEjr1zCsicMWpAA", "mF_9.B5f-4.1JqM", "tGzv3JOkF0XG5Qx2TlKWIA=="]) {
      await expectRejected(gate, await gate.request("/items/1", { headers: bearer(opaque) }), 401, "invalid_token");
    }
    expect((await fixture.stats()).jwksFetches).toBe(0);
  });

  it("error bodies never contain the token or claim values", async () => {
    const { gate } = await setup();
    const key = await makeKey("ES256"); // not in the JWKS
    const token = await mint(key, { sub: "secret-subject-value" });
    const response = await gate.request("/items/1", { headers: bearer(token) });
    const text = await response.clone().text();
    await expectRejected(gate, response, 401, "invalid_token");
    expect(text).not.toContain(token.split(".")[1]!.slice(0, 16));
    expect(text + JSON.stringify(gate.logs)).not.toContain("secret-subject-value");
  });
});
