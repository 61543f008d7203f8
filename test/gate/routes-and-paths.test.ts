import { describe, expect, it } from "vitest";
import { bearer, expectRejected, mint, originSaw, setup, type Gate } from "../helpers";

/**
 * Threat catalogue section E: routes and paths. Invariant: authorize exactly what you forward. Every
 * request either gets 400, or is matched on one canonical path that is then exactly what the origin sees.
 * Routes: /public/** public, GET /items/** items:read, POST|DELETE /items/** items:write, * /admin/** admin.
 */

type Expectation =
  | { status: 400 }
  | { status: 403 } // no rule: denied without forwarding
  | { forwardedAs: string; needs: "admin" | "public" | "items:read" };

const CASES: [string, Expectation][] = [
  ["/public/../admin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/public/%2e%2e/admin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/public/%2E%2E/admin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/public/.%2e/admin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/public/./../admin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/%61dmin/x", { forwardedAs: "/admin/x", needs: "admin" }],
  ["/%70ublic/%7Ex", { forwardedAs: "/public/~x", needs: "public" }],
  ["/admin%2Fx", { status: 400 }],
  ["/admin%2fx", { status: 400 }],
  ["/public/..%2Fadmin/x", { status: 400 }],
  ["/admin%5Cx", { status: 400 }],
  ["/public%5C..%5Cadmin", { status: 400 }],
  ["//admin/x", { status: 400 }],
  ["/public//x", { status: 400 }],
  ["/ADMIN/x", { status: 403 }],
  ["/Public/x", { status: 403 }],
  ["/admin;x=1/y", { status: 400 }],
  ["/public;jsessionid=1/x", { status: 400 }],
  ["/admin/..;/public/x", { status: 400 }],
  ["/public/..;/admin/x", { status: 400 }],
  // T-I1: `%3B` is `;` (refused while semicolons are), `%23` would be a fragment at a decoding origin.
  ["/admin%3Bx", { status: 400 }],
  ["/public/x%3Badmin", { status: 400 }],
  ["/admin%23x", { status: 400 }],
  ["/public/a%23b", { status: 400 }],
  ["/public/a%3bb", { status: 400 }],
  ["/admin%252f", { status: 400 }],
  ["/public/%252e%252e/admin", { status: 400 }],
  ["/public/%00", { status: 400 }],
  ["/admin%00/x", { status: 400 }],
  ["/public/%zz", { status: 400 }],
  ["/public/%", { status: 400 }],
  ["/admin/x?/public/", { forwardedAs: "/admin/x?/public/", needs: "admin" }],
  ["/public/x?x=/../admin", { forwardedAs: "/public/x?x=/../admin", needs: "public" }],
  ["/public/caf%C3%A9", { forwardedAs: "/public/caf%C3%A9", needs: "public" }],
];

async function check(gate: Gate, path: string, expectation: Expectation, tokens: { admin: string; read: string }) {
  if ("status" in expectation) {
    const response = await gate.request(path, { headers: bearer(tokens.admin) });
    await expectRejected(gate, response, expectation.status, expectation.status === 400 ? "invalid_request" : "access_denied");
    return;
  }
  if (expectation.needs !== "public") {
    // Without the needed scope the request must be refused: the public prefix it came in through is irrelevant.
    const other = expectation.needs === "admin" ? tokens.read : undefined;
    await expectRejected(gate, await gate.request(path, other ? { headers: bearer(other) } : {}), other ? 403 : 401);
  }
  const seen = await originSaw(await gate.request(path, { headers: bearer(expectation.needs === "items:read" ? tokens.read : tokens.admin) }));
  expect(seen.path).toBe(expectation.forwardedAs);
}

describe("E: routes and paths", () => {
  it.each(CASES)("T-E1 %s is normalized once and forwarded as matched, or refused", async (path, expectation) => {
    const { key, gate } = await setup();
    const tokens = { admin: await mint(key, { scope: "admin items:read" }), read: await mint(key, { scope: "items:read" }) };
    await check(gate, path, expectation, tokens);
  });

  it("T-E2 a path matching no rule is denied, even with a valid token, and never passed through", async () => {
    const { key, gate } = await setup();
    const token = await mint(key, { scope: "admin items:read items:write" });
    for (const path of ["/", "/unknown", "/itemsx/1", "/item"]) {
      await expectRejected(gate, await gate.request(path, { headers: bearer(token) }), 403, "access_denied");
    }
    // A method no rule allows on a known path is denied too.
    await expectRejected(gate, await gate.request("/items/1", { method: "PATCH", headers: bearer(token) }), 403, "access_denied");
  });

  it("T-E3 HEAD is checked as GET and forwarded as HEAD; OPTIONS is its own method", async () => {
    const { key, gate } = await setup();
    const token = await mint(key, { scope: "items:read" });
    const head = await gate.request("/items/1", { method: "HEAD", headers: bearer(token) });
    expect(head.status).toBe(200);
    const [record] = (await gate.fixture.originRequests()).slice(-1);
    expect(record?.method).toBe("HEAD");
    await expectRejected(gate, await gate.request("/items/1", { method: "HEAD" }), 401);
    await expectRejected(gate, await gate.request("/items/1", { method: "OPTIONS", headers: bearer(token) }), 403, "access_denied");
  });

  it("T-E3 X-HTTP-Method-Override and friends never change the method the origin sees", async () => {
    const { key, gate } = await setup();
    const token = await mint(key, { scope: "items:read" });
    const seen = await originSaw(
      await gate.request("/items/1", {
        headers: { ...bearer(token), "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE", X_HTTP_Method_Override: "DELETE" },
      }),
    );
    expect(seen.method).toBe("GET");
    expect(Object.keys(seen.headers).filter((name) => /method/i.test(name))).toEqual([]);
  });

  it("T-E5 public route: no token is anonymous, an invalid token is 401 (not anonymous), a valid one passes", async () => {
    const { key, gate } = await setup();
    const anonymous = await originSaw(await gate.request("/public/x"));
    expect(Object.keys(anonymous.headers).filter((name) => name.startsWith("x-auth-"))).toEqual([]);
    for (const bad of ["garbage", await mint(key, { exp: Math.floor(Date.now() / 1000) - 3600 }), await mint(key, { aud: "https://other" })]) {
      await expectRejected(gate, await gate.request("/public/x", { headers: bearer(bad) }), 401, "invalid_token");
    }
    expect((await gate.request("/public/x", { headers: bearer(await mint(key)) })).status).toBe(200);
  });
});
