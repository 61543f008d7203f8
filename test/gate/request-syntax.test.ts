import { describe, expect, it } from "vitest";
import { baseConfig, bearer, expectRejected, Fixture, makeGate, mint, originSaw, setup, type Gate } from "../helpers";

/**
 * What a client writes around the token and in the query: the Authorization syntax (I10), query-string
 * method overrides (I15), the query bytes the origin gets (I16), and the gate's own headers (I17).
 * Routes (baseConfig): /public/** public, GET /items/** items:read, POST|DELETE /items/** items:write, /admin/** admin.
 */

const lastReason = (gate: Gate) => gate.logs.filter((line) => line.event === "decision").at(-1)?.reason;

describe("T-I10 Authorization: Bearer followed by anything but one space", () => {
  /** ASCII blanks and controls a header value can hold (workerd refuses NUL, CR, LF), two spaces, and RFC 7230 delimiters. */
  const SEPARATORS = ["\t", "  ", "   ", "\v", "\f", "\x01", "\x1f", "\x7f", " \t", "\t ", "(", ":", "@", "/", "=", "?", "\"", "\\"];
  /** Non-ASCII spaces (workerd sends them UTF-8 encoded, with a console warning per header: kept few). */
  const UNICODE_SPACES = ["\u00a0", "\u0085", "\u2003", "\u3000", "\ufeff"];

  it("T-I10 on a protected, a public and an unmatched path: 400 invalid_request malformed_credentials, never no token", async () => {
    const { key, gate } = await setup();
    const token = await mint(key, { scope: "items:read admin" });
    for (const separator of SEPARATORS) {
      for (const path of ["/items/1", "/public/x", "/admin/x"]) {
        const response = await gate.request(path, { headers: { authorization: `Bearer${separator}${token}` } });
        await expectRejected(gate, response, 400, "invalid_request");
        expect([JSON.stringify(separator), path, lastReason(gate)]).toEqual([JSON.stringify(separator), path, "malformed_credentials"]);
      }
    }
  });

  it("T-I10 non-ASCII spaces after Bearer (NBSP, NEL, EM SPACE, ideographic space, BOM): 400, never no token", async () => {
    const { gate } = await setup();
    // A short stand-in token: the separator alone decides (and workerd's warning quotes the whole value).
    for (const separator of UNICODE_SPACES) {
      for (const path of ["/items/1", "/public/x"]) {
        await expectRejected(gate, await gate.request(path, { headers: { authorization: `Bearer${separator}t` } }), 400, "invalid_request");
        expect([JSON.stringify(separator), lastReason(gate)]).toEqual([JSON.stringify(separator), "malformed_credentials"]);
      }
    }
  });

  it("T-I10 any case of the scheme; the challenge says invalid_request, not a bare challenge", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
      const { challenge } = await expectRejected(gate, await gate.request("/items/1", { headers: { authorization: `${scheme}\t${token}` } }), 400, "invalid_request");
      expect(challenge).toContain('error="invalid_request"');
    }
  });

  it("T-I10 with authorization = forward: a mis-spaced token never reaches the origin by a public rule", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { forward: { authorization: "forward" } }));
    const token = await mint(key);
    for (const separator of ["\t", "  ", "\u00a0", "\v"]) {
      await expectRejected(gate, await gate.request("/public/x", { headers: { authorization: `Bearer${separator}${token}` } }), 400, "invalid_request");
    }
    expect((await originSaw(await gate.request("/public/x", { headers: bearer(token) }))).headers.authorization).toBe(`Bearer ${token}`);
  });

  it("T-I10 `Bearer` followed by a token character is another scheme: no token (bare 401; anonymous on public)", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    for (const value of [`Bearerx ${token}`, `Bearer-2 ${token}`, `Bearer_${token}`, `Bearer.${token}`, `Bearers ${token}`, `Basic dXNlcg==`]) {
      const { challenge } = await expectRejected(gate, await gate.request("/items/1", { headers: { authorization: value } }), 401);
      expect(challenge).toBe('Bearer realm="test-api", scope="items:read"');
      expect(lastReason(gate)).toBe("token_missing");
      expect((await gate.request("/public/x", { headers: { authorization: value } })).status).toBe(200);
    }
    expect((await gate.request("/items/1", { headers: bearer(token) })).status).toBe(200);
  });
});

/** The query the echo origin received (its `path` is the raw request target). */
const queryOf = (seen: { path: string }) => (seen.path.includes("?") ? seen.path.slice(seen.path.indexOf("?")) : "");

describe("T-I15 query-string method overrides", () => {
  const OVERRIDES = [
    "_method=DELETE",
    "_METHOD=DELETE",
    "_Method=delete",
    "_%6Dethod=DELETE",
    "%5Fmethod=DELETE",
    "x-http-method-override=DELETE",
    "X-HTTP-Method-Override=DELETE",
    "x_http_method_override=DELETE",
    "x-http-method=DELETE",
    "x-method-override=DELETE",
    "X%2DMethod%2DOverride=DELETE",
    ".method=DELETE",
    "+_method=DELETE",
    "_method%5B%5D=DELETE",
    "_method",
    "keep=1;_method=DELETE",
    // PHP cuts a name at its first NUL: `$_GET['_method']` for all three.
    "_method%00=DELETE",
    "_method%00x=DELETE",
    "%20_method%00=DELETE",
  ];

  it("T-I15 strip (default): the origin never sees the parameter, the method checked is the method forwarded", async () => {
    const { key, gate } = await setup();
    const readOnly = await mint(key, { scope: "items:read" });
    for (const override of OVERRIDES) {
      const seen = await originSaw(await gate.request(`/items/1?a=%20x&${override}&b=1+2`, { headers: bearer(readOnly) }));
      expect([override, seen.method, queryOf(seen)]).toEqual([override, "GET", "?a=%20x&b=1+2"]);
      const alone = await originSaw(await gate.request(`/public/x?${override}`));
      expect([override, alone.path]).toEqual([override, "/public/x"]);
    }
    // A DELETE still needs items:write whatever the query says.
    await expectRejected(gate, await gate.request("/items/1?_method=GET", { method: "DELETE", headers: bearer(readOnly) }), 403, "insufficient_scope");
  });

  it("T-I15 reject: 400 method_override and nothing reaches the origin, on protected and public paths", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { methods: { override_headers: "reject" } }));
    const token = await mint(key, { scope: "items:read items:write" });
    for (const override of OVERRIDES) {
      for (const path of [`/items/1?a=1&${override}`, `/public/x?${override}&a=1`]) {
        await expectRejected(gate, await gate.request(path, { headers: bearer(token) }), 400, "invalid_request");
        expect([path, lastReason(gate)]).toEqual([path, "method_override"]);
      }
    }
    // Names that only resemble an override are other parameters.
    const seen = await originSaw(await gate.request("/items/1?method=DELETE&a=_method&_methods=1", { headers: bearer(token) }));
    expect(queryOf(seen)).toBe("?method=DELETE&a=_method&_methods=1");
  });
});

describe("T-I16 removing access_token keeps every other byte of the query", () => {
  /** [query around the token, what the origin must see]. */
  const CASES: [string, string][] = [
    ["a=%20b&{t}&c=d+e", "?a=%20b&c=d+e"],
    ["{t}&plus=1+2&encoded=%2B&lower=%2b", "?plus=1+2&encoded=%2B&lower=%2b"],
    ["empty=&{t}&novalue", "?empty=&novalue"],
    ["r=1&r=2&{t}&r=1", "?r=1&r=2&r=1"],
    ["a=1&&b=2&{t}", "?a=1&&b=2"],
    ["a=1&&{t}&&b=2", "?a=1&&&b=2"],
    ["e=%C3%A9&{t}&euro=%E2%82%AC&raw=%FF&bad=%ZZ", "?e=%C3%A9&euro=%E2%82%AC&raw=%FF&bad=%ZZ"],
    ["tilde=%7E&{t}&star=*&slash=/&q=?", "?tilde=%7E&star=*&slash=/&q=?"],
    ["{t}", ""],
    ["{t}&", ""],
    ["k&{t}", "?k"],
  ];

  it("T-I16 token read from the query (allow_query): the origin sees exactly the other bytes", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { token: { allow_query: true } }));
    for (const [around, expected] of CASES) {
      const token = await mint(key);
      const seen = await originSaw(await gate.request(`/items/1?${around.replace("{t}", `access_token=${token}`)}`));
      expect([around, queryOf(seen)]).toEqual([around, expected]);
      expect(seen.path).not.toContain(token.slice(0, 20));
    }
  });

  it("T-I16 `access%5Ftoken` is access_token: read, and removed", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { token: { allow_query: true } }));
    const token = await mint(key);
    const seen = await originSaw(await gate.request(`/items/1?x=%20&access%5Ftoken=${token}&y=+`));
    expect(queryOf(seen)).toBe("?x=%20&y=+");
  });

  it("T-I16 authorization = strip removes an access_token the gate did not read (allow_query false)", async () => {
    const { key, gate } = await setup();
    const token = await mint(key);
    for (const [around, expected] of CASES) {
      const seen = await originSaw(await gate.request(`/public/x?${around.replace("{t}", `access_token=${token}`)}`));
      expect([around, queryOf(seen)]).toEqual([around, expected]);
    }
    for (const name of ["access_token", "access%5Ftoken", "access%5ftoken", "%61ccess_token"]) {
      const seen = await originSaw(await gate.request(`/public/x?${name}=${token}&z=%20`));
      expect([name, queryOf(seen)]).toEqual([name, "?z=%20"]);
    }
  });

  it("T-I16 authorization = forward keeps the whole query as sent, token included", async () => {
    const { key, gate } = await setup((f) => baseConfig(f, { token: { allow_query: true }, forward: { authorization: "forward" } }));
    const token = await mint(key);
    const query = `?a=%20b&access_token=${token}&c=d+e&&f`;
    expect(queryOf(await originSaw(await gate.request(`/items/1${query}`)))).toBe(query);
  });
});

describe("T-I16 a credential parameter only some origins read is refused", () => {
  // PHP reads each as `$_GET['access_token']`; ASP.NET Core's query is case-insensitive; Rack 2 splits on `;`.
  const LOOKALIKES = ["access.token", "access%20token", "%20access_token", "access_token[]", "access_token%5Bx%5D", "access_token%00", "access_token%00x", "access[token", "Access_Token", "ACCESS_TOKEN", "k=1;access_token"];

  it("T-I16 400 access_token_lookalike whatever the configuration says of query tokens and forwarding, nothing forwarded", async () => {
    for (const overrides of [{}, { token: { allow_query: true } }, { forward: { authorization: "forward" as const } }, { token: { allow_query: true }, forward: { authorization: "forward" as const } }]) {
      const { key, gate } = await setup((f) => baseConfig(f, overrides));
      const token = await mint(key, { scope: "items:read" });
      for (const name of LOOKALIKES) {
        for (const [path, headers] of [
          [`/items/1?${name}=CLIENT-CRED&a=1`, bearer(token)],
          [`/public/x?a=1&${name}=CLIENT-CRED`, {}],
          [`/public/x?${name}=${token}`, {}],
        ] as const) {
          await expectRejected(gate, await gate.request(path, { headers }), 400, "invalid_request");
          expect([path, lastReason(gate)]).toEqual([path, "access_token_lookalike"]);
        }
      }
    }
  });

  it("T-I16 names that merely resemble it are other parameters, forwarded as sent", async () => {
    const { key, gate } = await setup();
    const token = await mint(key, { scope: "items:read" });
    const query = "?access_tokens=1&my_access_token=2&access-token=3&a=access_token&token=4";
    expect(queryOf(await originSaw(await gate.request(`/items/1${query}`, { headers: bearer(token) })))).toBe(query);
  });
});

describe("T-I17 the gate's own headers outside the identity namespace", () => {
  it("T-I17 an assertion header inside header_prefix: every request 500 server_error, nothing forwarded", async () => {
    const fixture = new Fixture();
    const logs: Record<string, unknown>[] = [];
    const config = baseConfig(fixture, {
      forward: { assertion: { header: "x-auth-assertion", issuer: "https://gate.test", audience: "https://origin.test", signing_keys: "ASSERTION_KEYS" } },
    });
    const gate = makeGate(fixture, config, { log: (entry) => logs.push(entry) });
    for (const path of ["/public/x", "/items/1", "/admin/x", "/"]) {
      await expectRejected(gate, await gate.request(path, { headers: bearer("x.y.z") }), 500, "server_error");
    }
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(line).toMatchObject({ event: "config_invalid", issues: [expect.stringMatching(/^forward\.assertion\.header: must not start with the identity header prefix/)] });
  });
});
