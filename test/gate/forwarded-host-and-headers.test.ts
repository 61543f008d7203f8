import { connect } from "cloudflare:sockets";
import { decodeJwt } from "jose";
import { describe, expect, inject, it } from "vitest";
import type { PortcullisConfig } from "../../src/config/schema";
import { baseConfig, bearer, expectRejected, Fixture, makeGate, makeKey, mint, originSaw, setup, type Gate, type TestKey } from "../helpers";

/**
 * Threat catalogue section I, forwarding: T-I5 (client forwarded-host headers), T-I8 (the example origin
 * verifies the raw request target), T-I9 (identity header values are injective).
 */

/** Every header an origin framework may take the client's host, scheme, port or prefix from. */
const SPOOFED: Record<string, string> = {
  "X-Forwarded-Host": "evil.test",
  "X-Forwarded-Proto": "http",
  Forwarded: 'for=1.2.3.4;host="evil.test";proto=http',
  "X-Forwarded-Port": "8443",
  "X-Forwarded-Prefix": "/admin",
  "X-Forwarded-Server": "evil.test",
  "X-Forwarded-Scheme": "http",
  "X-Forwarded-Ssl": "off",
  "X-Forwarded-Protocol": "http",
  "X-Original-Host": "evil.test",
  "X-Host": "evil.test",
  "X-Url-Scheme": "http",
  "Front-End-Https": "off",
};

/** The same headers as sent, upper case, lower case, and with `_` for `-` (nginx/Node may fold them). */
const SPELLINGS: [string, (name: string) => string][] = [
  ["as documented", (name) => name],
  ["upper case", (name) => name.toUpperCase()],
  ["lower case", (name) => name.toLowerCase()],
  ["underscores", (name) => name.replace(/-/g, "_")],
];

const spoofed = (spell: (name: string) => string) => Object.fromEntries(Object.entries(SPOOFED).map(([name, value]) => [spell(name), value]));

/** The origin sees only the gate's host and scheme, none of the client's copies. */
function expectOnlyGateValues(headers: Record<string, unknown>, spell: (name: string) => string, host = "api.test", proto = "https") {
  for (const name of Object.keys(SPOOFED).map((n) => spell(n).toLowerCase())) {
    if (name === "x-forwarded-host" || name === "x-forwarded-proto") continue;
    expect(headers[name], name).toBeUndefined();
  }
  expect(headers["x-forwarded-host"]).toBe(host);
  expect(headers["x-forwarded-proto"]).toBe(proto);
  // Control: other underscore headers do reach the origin, so a missing one above is the gate's doing.
  expect(headers["x_unrelated"]).toBe("kept");
}

const withOptional = (fixture: Fixture): PortcullisConfig => {
  const config = baseConfig(fixture);
  return { ...config, routes: [...config.routes, { path: "/maybe/**", access: "optional" }] };
};

describe("T-I5 client forwarded-host headers never reach the origin", () => {
  it.each(SPELLINGS)("T-I5 public, protected, optional and preflight requests: spoofed headers (%s) replaced by the gate's", async (_label, spell) => {
    const { key, gate } = await setup(withOptional);
    const client = { ...spoofed(spell), X_Unrelated: "kept" };
    const token = await mint(key);
    const requests: [string, RequestInit][] = [
      ["/public/x", { headers: client }],
      ["/items/1", { headers: { ...client, ...bearer(token) } }],
      ["/maybe/x", { headers: client }],
      ["/maybe/x", { headers: { ...client, ...bearer(token) } }],
    ];
    for (const [path, init] of requests) expectOnlyGateValues((await originSaw(await gate.request(path, init))).headers, spell);

    const preflight = await originSaw(await gate.request("/items/1", { method: "OPTIONS", headers: { ...client, Origin: "https://app.example", "Access-Control-Request-Method": "GET" } }));
    expect(preflight.method).toBe("OPTIONS");
    for (const name of Object.keys(SPOOFED).map((n) => spell(n).toLowerCase())) {
      if (name !== "x-forwarded-host" && name !== "x-forwarded-proto") expect(preflight.headers[name], name).toBeUndefined();
    }
    expect(preflight.headers["x-forwarded-host"]).toBe("api.test");
    expect(preflight.headers["x-forwarded-proto"]).toBe("https");
  });

  it("T-I5 refused requests carrying spoofed headers reach nothing", async () => {
    const { key, gate } = await setup(withOptional);
    const client = spoofed((name) => name);
    await expectRejected(gate, await gate.request("/items/1", { headers: client }), 401);
    await expectRejected(gate, await gate.request("/maybe/x", { headers: { ...client, ...bearer("not.a.jwt") } }), 401, "invalid_token");
    await expectRejected(gate, await gate.request("/admin/x", { headers: { ...client, ...bearer(await mint(key)) } }), 403, "insufficient_scope");
    await expectRejected(gate, await gate.request("/nowhere", { headers: client }), 403, "access_denied");
  });

  it.each([
    ["https://API.EXAMPLE.TEST.:443/public/x", "api.example.test", "https"],
    ["https://Api.Example.Test:8443/public/x", "api.example.test:8443", "https"],
    ["http://api.example.test:80/public/x", "api.example.test", "http"],
    ["http://api.example.test:443/public/x", "api.example.test:443", "http"],
  ])("T-I5 %s: the origin is told the normalized host the rules matched (%s, %s)", async (url, host, proto) => {
    const { gate } = await setup();
    const seen = await originSaw(await gate.request(url, { headers: { "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "gopher", X_Unrelated: "kept" } }));
    expectOnlyGateValues(seen.headers, (name) => name, host, proto);
  });

  it("T-I5 a host rule matched on the normalized host is the host the origin is told", async () => {
    const { key, gate } = await setup((f) => ({ ...baseConfig(f), routes: [{ host: "tenant.example.test", path: "/**", scopes: ["items:read"] }, { path: "/**", access: "deny" }] }));
    const token = await mint(key);
    const seen = await originSaw(await gate.request("https://TENANT.example.test./x", { headers: { ...bearer(token), "X-Forwarded-Host": "other.example.test", X_Unrelated: "kept" } }));
    expectOnlyGateValues(seen.headers, (name) => name, "tenant.example.test");
    await expectRejected(gate, await gate.request("https://other.example.test/x", { headers: { ...bearer(token), "X-Forwarded-Host": "tenant.example.test" } }), 403, "access_denied");
  });
});

const ASSERTION = { issuer: "https://gate.test", audience: "example-origin", signing_keys: "ASSERTION_KEYS" };

async function assertingGate(origin?: string): Promise<{ key: TestKey; gate: Gate }> {
  const fixture = new Fixture();
  const key = await makeKey("ES256");
  await fixture.serveJwks({ keys: [key.publicJwk] });
  const gate = makeGate(fixture, baseConfig(fixture, { forward: { assertion: ASSERTION } }), {
    env: { ASSERTION_KEYS: inject("assertionPrivateJwk") },
    ...(origin ? { origin } : {}),
  });
  return { key, gate };
}

/** What the gate sent the (echo) origin for `url`: the identity headers, the host headers and the assertion. */
async function captured(url: string): Promise<Record<string, string>> {
  const { key, gate } = await assertingGate();
  const seen = await originSaw(await gate.request(url, { headers: { ...bearer(await mint(key)), "X-Forwarded-Host": "evil.test" } }));
  return Object.fromEntries(
    Object.entries(seen.headers as Record<string, string>).filter(([name]) => name.startsWith("x-auth-") || name.startsWith("x-forwarded-") || name === "x-portcullis-assertion"),
  );
}

/**
 * Sends a request to the example origin over a raw TCP socket, so the request target reaches it exactly as
 * written (`fetch` would resolve `..` and `\` first). Returns the status and the JSON body.
 */
async function rawToExampleOrigin(target: string, headers: Record<string, string>): Promise<{ status: number; error?: string }> {
  const { host } = new URL(inject("exampleOriginUrl"));
  const socket = connect(host);
  const lines = [`GET ${target} HTTP/1.1`, `host: ${host}`, "connection: close", ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  const writer = socket.writable.getWriter();
  await writer.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of socket.readable as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
  await socket.close();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  // The body may be chunked: the JSON object is the one `{...}` in it.
  const body = JSON.parse(/\{.*\}/s.exec(text.slice(text.indexOf("\r\n\r\n")))?.[0] ?? "{}") as { error?: string };
  return { status, ...(body.error ? { error: body.error } : {}) };
}

describe("T-I5 the assertion binds the host; T-I8 the example origin checks the raw target", () => {
  it("T-I5 the assertion carries the normalized host (API.EXAMPLE.TEST.:443 -> api.example.test)", async () => {
    const headers = await captured("https://API.EXAMPLE.TEST.:443/items/7");
    expect(headers["x-forwarded-host"]).toBe("api.example.test");
    expect(decodeJwt(headers["x-portcullis-assertion"]!).host).toBe("api.example.test");
  });

  it("T-I5 the example origin accepts the gate's host and refuses the assertion under another X-Forwarded-Host", async () => {
    const { key, gate } = await assertingGate(inject("exampleOriginUrl"));
    const response = await gate.request("https://API.EXAMPLE.TEST.:443/items/7", { headers: { ...bearer(await mint(key)), "X-Forwarded-Host": "evil.test" } });
    expect(await response.json()).toMatchObject({ ok: true, path: "/items/7" });
    const headers = await captured("https://api.example.test/items/7");
    expect(await rawToExampleOrigin("/items/7", { ...headers, "x-forwarded-host": "evil.test" })).toEqual({ status: 403, error: "host_mismatch" });
    expect(await rawToExampleOrigin("/items/7", { ...headers, "x-forwarded-host": "API.EXAMPLE.TEST" })).toEqual({ status: 403, error: "host_mismatch" });
  });

  it.each(["/x/../items/7", "/x/%2e%2e/items/7", "/x/%2E%2E/items/7", "/items/7/.", "/items/./7", "/x\\..\\items/7", "/items%2F7", "/items%5C7"])(
    "T-I8 the example origin refuses the captured /items/7 assertion on the raw target %s",
    async (target) => {
      const headers = await captured("/items/7");
      expect(await rawToExampleOrigin(target, headers)).toEqual({ status: 403, error: "target_not_canonical" });
      // The exact target still verifies: the refusal above was about the target alone.
      expect(await rawToExampleOrigin("/items/7", headers)).toEqual({ status: 200 });
    },
  );

  it.each([
    ["/ITEMS/7", "/items/7"],
    ["/items/7?", "/items/7"],
    ["/items/7/", "/items/7"],
    ["//items/7", "/items/7"],
    ["/items/%37", "/items/7"],
    ["/items/7?b=2&a=1", "/items/7?a=1&b=2"],
  ])("T-I8 the example origin refuses the raw target %s (assertion for %s) as url_mismatch", async (target, bound) => {
    const headers = await captured(bound);
    expect(await rawToExampleOrigin(target, headers)).toEqual({ status: 403, error: "url_mismatch" });
    expect(await rawToExampleOrigin(bound, headers)).toEqual({ status: 200 });
  });
});

/** One claim value through `claim_headers` (`x-auth-v`) or as `sub`: the header value the origin received. */
async function headerFor(key: TestKey, gate: Gate, claims: Record<string, unknown>, header: string): Promise<unknown> {
  return (await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key, claims)) }))).headers[header];
}

describe("T-I9 identity header values are injective", () => {
  const CLAIM_PAIRS: [text: string, textSent: string, value: unknown, valueSent: string][] = [
    ["1", '"1"', 1, "1"],
    ["-1.5", '"-1.5"', -1.5, "-1.5"],
    ["true", '"true"', true, "true"],
    ["null", '"null"', null, "null"],
    ['{"a":1}', '"{\\"a\\":1}"', { a: 1 }, '{"a":1}'],
    ["[1]", '"[1]"', [1], "[1]"],
    ['" x"', '"\\" x\\""', " x", '" x"'],
    ['"Zo\\u00eb"', '"\\"Zo\\\\u00eb\\""', "Zoë", '"Zo\\u00eb"'],
    ['""', '"\\"\\""', "", '""'],
  ];

  it.each(CLAIM_PAIRS)("T-I9 claim_headers: the text %j (sent %s) and the value %j (sent %s) arrive differently", async (text, textSent, value, valueSent) => {
    const { key, gate } = await setup((f) => baseConfig(f, { forward: { claim_headers: { "x-auth-v": "v" } } }));
    expect(await headerFor(key, gate, { v: text }, "x-auth-v")).toBe(textSent);
    expect(await headerFor(key, gate, { v: value }, "x-auth-v")).toBe(valueSent);
  });

  const SUB_PAIRS: [a: string, aSent: string, b: string, bSent: string][] = [
    ['" x"', '"\\" x\\""', " x", '" x"'],
    ['"Zo\\u00eb"', '"\\"Zo\\\\u00eb\\""', "Zoë", '"Zo\\u00eb"'],
    ['"a"', '"\\"a\\""', "a", "a"],
    ['""', '"\\"\\""', "", '""'],
    ["a ", '"a "', "a", "a"],
  ];

  it.each(SUB_PAIRS)("T-I9 sub: %j (sent %s) and %j (sent %s) arrive differently", async (a, aSent, b, bSent) => {
    const { key, gate } = await setup();
    expect(await headerFor(key, gate, { sub: a }, "x-auth-sub")).toBe(aSent);
    expect(await headerFor(key, gate, { sub: b }, "x-auth-sub")).toBe(bSent);
  });

  it("T-I9 JSON-looking text stays verbatim in string headers (their values are always strings)", async () => {
    const { key, gate } = await setup();
    const seen = await originSaw(await gate.request("/items/1", { headers: bearer(await mint(key, { sub: "12345", client_id: "true" })) }));
    expect(seen.headers["x-auth-sub"]).toBe("12345");
    expect(seen.headers["x-auth-client-id"]).toBe("true");
  });
});
