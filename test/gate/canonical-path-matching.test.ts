import fc from "fast-check";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { explain } from "../../src/pipeline/explain";
import { baseConfig, bearer, expectRejected, mint, originSaw, setup, type Fixture, type Gate, type TestKey } from "../helpers";

/**
 * Threat catalogue section I, paths: a percent-encoded character is matched as the origin decodes it (T-I1),
 * and `/admin.`, `/admin./x`, `/admin.json`, `/admin/` have one behaviour per option (T-I12). Through both
 * mounts (vitest projects `worker` and `hono`).
 */

const withRoutes = (routes: PortcullisConfig["routes"], paths: PortcullisConfig["paths"] = {}) => (fixture: Fixture) => baseConfig(fixture, { routes, paths });

interface Tokens {
  admin: string;
  weak: string;
}

async function tokens(key: TestKey, weakScope: string): Promise<Tokens> {
  return { admin: await mint(key, { scope: `admin ${weakScope}` }), weak: await mint(key, { scope: weakScope }) };
}

/** The strict rule applies: 401 anonymous, 403 with the weaker scope only, forwarded as `forwarded` with admin. */
async function expectStrictRule(gate: Gate, path: string, method: string, t: Tokens, forwarded: string) {
  await expectRejected(gate, await gate.request(path, { method }), 401);
  await expectRejected(gate, await gate.request(path, { method, headers: bearer(t.weak) }), 403, "insufficient_scope");
  const seen = await originSaw(await gate.request(path, { method, headers: bearer(t.admin) }));
  expect(seen.path, path).toBe(forwarded);
}

/** Refused with 400 whoever asks; nothing reaches the origin. */
async function expectRefused(gate: Gate, path: string, method: string, t: Tokens) {
  await expectRejected(gate, await gate.request(path, { method }), 400, "invalid_request");
  await expectRejected(gate, await gate.request(path, { method, headers: bearer(t.admin) }), 400, "invalid_request");
}

/** Every spelling that escapes one or all of the segment's characters, in upper and lower case. */
function spellings(path: string): string[] {
  const escape = (char: string, lower: boolean) => {
    const hex = char.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
    return `%${lower ? hex.toLowerCase() : hex}`;
  };
  const chars = [...path];
  const special = chars.map((c, i) => [c, i] as const).filter(([c]) => /[!$&'()*+,;=:@]/.test(c));
  const variants = new Set<string>();
  for (const lower of [false, true]) {
    for (const [c, i] of special) variants.add(chars.map((x, j) => (j === i ? escape(c, lower) : x)).join(""));
    variants.add(chars.map((x) => (/[!$&'()*+,;=:@]/.test(x) ? escape(x, lower) : x)).join(""));
    variants.add(chars.map((x, j) => (x === "/" || j < 4 ? x : escape(x, lower))).join("")); // all but `/v1/`
  }
  return [...variants];
}

describe("T-I1 percent-encoded characters that are legal raw in a segment match the rule of their decoded form", () => {
  const LITERALS: [string, string][] = [
    ["POST", "/v1/items:purge"],
    ["GET", "/v1/users/@me"],
    ["POST", "/v1/tags/c++"],
    ["PUT", "/v1/notes/o'brien(1)!*"],
    ["DELETE", "/v1/q/a=b&c,d$e"],
  ];
  const config = withRoutes([
    ...LITERALS.map(([method, path]) => ({ path, methods: [method], scopes: ["admin"] })),
    // The broader, weaker rule an encoded spelling must never fall to.
    { path: "/v1/**", methods: ["GET", "POST", "PUT", "DELETE"], scopes: ["items:write"] },
  ]);

  it.each(LITERALS)("T-I1 %s %s: every encoded spelling hits the strict rule and is forwarded decoded", async (method, literal) => {
    const { key, gate } = await setup(config);
    const t = await tokens(key, "items:write");
    const variants = spellings(literal);
    expect(variants.length).toBeGreaterThanOrEqual(3);
    for (const path of [literal, ...variants]) await expectStrictRule(gate, path, method, t, literal);
  });

  it("T-I1 %3A %3a %40 %2B in the examples of the issue, and a sibling path still reaches the weaker rule", async () => {
    const { key, gate } = await setup(config);
    const t = await tokens(key, "items:write");
    for (const path of ["/v1/items%3Apurge", "/v1/items%3apurge", "/v1/%69tems%3Apur%67e"]) await expectStrictRule(gate, path, "POST", t, "/v1/items:purge");
    await expectStrictRule(gate, "/v1/users/%40me", "GET", t, "/v1/users/@me");
    await expectStrictRule(gate, "/v1/tags/c%2B%2b", "POST", t, "/v1/tags/c++");
    // the weaker rule is still there for what it is meant for (also decoded when forwarded)
    expect((await originSaw(await gate.request("/v1/items%3Alist", { method: "POST", headers: bearer(t.weak) }))).path).toBe("/v1/items:list");
  });

  it("T-I1 %3F %23, %3B, %2F, invalid UTF-8, overlong %C0%AF and %E0%80%AE -> 400, nothing reaches the origin", async () => {
    const { key, gate } = await setup(config);
    const t = await tokens(key, "items:write");
    for (const path of [
      "/v1/items%3Fpurge",
      "/v1/items%3fpurge",
      "/v1/items%23purge",
      "/v1/items%3Bpurge",
      "/v1/items%2Fpurge",
      "/v1/items%C0%AFpurge", // overlong `/`
      "/v1/%C0%AE%C0%AE/items:purge", // overlong `..`
      "/v1/%E0%80%AE%E0%80%AE/items:purge",
      "/v1/items%E0%80%AE",
      "/v1/items%80purge", // lone continuation byte
      "/v1/items%C3purge", // truncated sequence
      "/v1/items%FF",
      "/v1/items%ED%A0%80", // a UTF-16 surrogate in UTF-8
    ]) {
      await expectRefused(gate, path, "POST", t);
    }
  });

  it("T-I1 arbitrary spellings of the strict literal never reach the weaker rule (property, through the gate)", async () => {
    const { key, gate, fixture } = await setup(config);
    const t = await tokens(key, "items:write");
    const literal = "/v1/items:purge";
    const spelling = fc
      .array(fc.constantFrom("raw", "upper", "lower"), { minLength: literal.length, maxLength: literal.length })
      .map((choices) => [...literal].map((c, i) => (c === "/" || choices[i] === "raw" ? c : `%${c.charCodeAt(0).toString(16)[choices[i] === "lower" ? "toLowerCase" : "toUpperCase"]()}`)).join(""));
    let forwarded = 0;
    await fc.assert(
      fc.asyncProperty(spelling, fc.boolean(), async (path, admin) => {
        const response = await gate.request(path, { method: "POST", headers: bearer(admin ? t.admin : t.weak) });
        if (!admin) {
          expect(response.status, path).toBe(403);
          await response.arrayBuffer();
          return;
        }
        expect((await originSaw(response)).path, path).toBe(literal);
        forwarded++;
      }),
      { numRuns: 60 },
    );
    expect(forwarded).toBeGreaterThan(10);
    expect((await fixture.originRequests()).every((record) => record.path === literal)).toBe(true);
  }, 60_000);
});

describe("T-I12 /admin., /admin./x, /admin.json, /admin/, /admin%2E, /ADMIN against a rule on /admin", () => {
  const rules: PortcullisConfig["routes"] = [
    { path: "/admin", scopes: ["admin"] },
    { path: "/**", access: "public" },
  ];
  const public_ = async (gate: Gate, path: string, forwarded: string) => {
    expect((await originSaw(await gate.request(path))).path, path).toBe(forwarded);
  };

  it("T-I12 defaults: trailing slash meets the admin rule, trailing dots are refused, suffixes and case are their own paths", async () => {
    const { key, gate } = await setup(withRoutes(rules));
    const t = await tokens(key, "items:read");
    await expectStrictRule(gate, "/admin", "GET", t, "/admin");
    await expectStrictRule(gate, "/admin/", "GET", t, "/admin/"); // forwarded as sent
    for (const path of ["/admin.", "/admin./x", "/admin%2E", "/admin%2e", "/admin..", "/admin%2E/x"]) await expectRefused(gate, path, "GET", t);
    await public_(gate, "/admin.json", "/admin.json");
    await public_(gate, "/ADMIN", "/ADMIN");
  });

  it("T-I12 defaults: what Windows reads as the same file is refused too: trailing spaces, dots and spaces, NTFS stream names", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/reports/secret.pdf", scopes: ["admin"] }, { path: "/reports/**", access: "public" }]));
    const t = await tokens(key, "items:read");
    for (const path of ["/reports/secret.pdf%20", "/reports/secret.pdf.%20", "/reports/secret.pdf%20.%20", "/reports/secret.pdf%20%20", "/reports/secret.pdf::$DATA", "/reports/secret.pdf::$data/x", "/reports/secret.pdf:x:$DATA"]) {
      await expectRefused(gate, path, "GET", t);
    }
    // A space or colon inside a name is an ordinary character.
    await public_(gate, "/reports/my%20secret.pdf", "/reports/my%20secret.pdf");
    await public_(gate, "/reports/a:b", "/reports/a:b");
  });

  it('T-I12 paths.trailing_dots = "allow" also allows trailing spaces and stream names (origins not on Windows)', async () => {
    const { gate } = await setup(withRoutes(rules, { trailing_dots: "allow" }));
    await public_(gate, "/admin%20", "/admin%20");
    await public_(gate, "/admin::$DATA", "/admin::$DATA");
  });

  it("T-I12 /admin/ with different rules for /admin and /admin/** is refused: strict routers (Hono, Go, nginx) send it to /admin/*", async () => {
    const { key, gate } = await setup(
      withRoutes([
        { path: "/admin", methods: ["GET"], access: "public" },
        { path: "/admin/**", scopes: ["admin"] },
        { path: "/users/:id", methods: ["GET"], scopes: ["items:read"] },
        { path: "/users/:id/**", scopes: ["admin"] },
        { path: "/docs", access: "public" },
        { path: "/**", scopes: ["admin"] },
      ]),
    );
    const t = await tokens(key, "items:read");
    for (const path of ["/admin/", "/users/7/"]) {
      await expectRefused(gate, path, "GET", t);
      expect(gate.logs.filter((line) => line.event === "decision").at(-1)?.reason).toBe("path_trailing_slash_ambiguous");
    }
    // Without the trailing slash, and below it, each rule applies as before.
    await public_(gate, "/admin", "/admin");
    await expectRejected(gate, await gate.request("/admin/x"), 401);
    expect((await originSaw(await gate.request("/users/7", { headers: bearer(t.weak) }))).path).toBe("/users/7");
    // A catch-all is not the pattern's own subtree: /docs/ stays under the /docs rule.
    await public_(gate, "/docs/", "/docs/");
  });

  it('T-I12 paths.trailing_dots = "allow": a trailing dot is an ordinary character, matched and forwarded as is', async () => {
    const { key, gate } = await setup(withRoutes(rules, { trailing_dots: "allow" }));
    const t = await tokens(key, "items:read");
    await public_(gate, "/admin.", "/admin.");
    await public_(gate, "/admin%2E", "/admin."); // decoded, like every raw character
    await public_(gate, "/admin./x", "/admin./x");
    await expectStrictRule(gate, "/admin/", "GET", t, "/admin/");
    await expectStrictRule(gate, "/admin/%2E", "GET", t, "/admin/"); // a dot segment: resolved by URL parsing, as at the origin
  });

  it("T-I12 paths.suffix_match: /admin.json meets the admin rule and is forwarded unchanged; a rule naming the file wins", async () => {
    const { key, gate } = await setup(withRoutes([...rules, { path: "/admin/openapi.json", access: "public" }], { suffix_match: true }));
    const t = await tokens(key, "items:read");
    for (const path of ["/admin.json", "/admin.json/", "/admin.tar.gz"]) await expectStrictRule(gate, path, "GET", t, path);
    await expectStrictRule(gate, "/admin/", "GET", t, "/admin/");
    await public_(gate, "/admin/openapi.json", "/admin/openapi.json");
    await public_(gate, "/admin.json/x", "/admin.json/x");
    for (const path of ["/admin.", "/admin./x", "/admin%2E"]) await expectRefused(gate, path, "GET", t);
  });

  it("T-I12 suffix_match with trailing dots allowed: /admin. and /admin%2E are matched on their stem", async () => {
    const { key, gate } = await setup(withRoutes(rules, { suffix_match: true, trailing_dots: "allow" }));
    const t = await tokens(key, "items:read");
    await expectStrictRule(gate, "/admin.", "GET", t, "/admin.");
    await expectStrictRule(gate, "/admin%2E", "GET", t, "/admin.");
    await public_(gate, "/admin./x", "/admin./x");
  });

  it("T-E1 paths.case_insensitive: a non-ASCII letter with case is refused, since origins fold it their own way (Kelvin sign as k, long s as s)", async () => {
    const { key, gate } = await setup(withRoutes([{ path: "/keys/**", scopes: ["admin"] }, { path: "/admin/**", scopes: ["admin"] }, { path: "/**", access: "public" }], { case_insensitive: true }));
    const t = await tokens(key, "items:read");
    for (const path of ["/\u212Aeys/x", "/%E2%84%AAeys/x", "/adm%C4%B0n/x", "/adm%C4%B1n/x", "/%C5%BFecret", "/caf%C3%89", "/x/%C3%A9"]) await expectRefused(gate, path, "GET", t);
    // Non-ASCII without case (CJK, emoji, digits) is matched as before.
    await public_(gate, "/docs/%E6%96%87%E6%9B%B8", "/docs/%E6%96%87%E6%9B%B8");
    await public_(gate, "/docs/%F0%9F%98%80", "/docs/%F0%9F%98%80");
    // Case-sensitive matching (the default) has nothing to fold.
    const { gate: sensitive } = await setup(withRoutes([{ path: "/**", access: "public" }]));
    expect((await originSaw(await sensitive.request("/caf%C3%89"))).path).toBe("/caf%C3%89");
  });

  it("T-I12 paths.case_insensitive: /ADMIN and /ADMIN/ meet the admin rule, forwarded as sent", async () => {
    const { key, gate } = await setup(withRoutes(rules, { case_insensitive: true }));
    const t = await tokens(key, "items:read");
    await expectStrictRule(gate, "/ADMIN", "GET", t, "/ADMIN");
    await expectStrictRule(gate, "/Admin/", "GET", t, "/Admin/");
    await expectRefused(gate, "/ADMIN.", "GET", t);
  });

  it("T-I1 T-I12 explain uses the gate's path options: same canonical path, rule and refusal reason", async () => {
    const { key, gate, fixture } = await setup(withRoutes(rules, { suffix_match: true }));
    const parsed = parseConfig(withRoutes(rules, { suffix_match: true })(fixture));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const token = await mint(key, { scope: "items:read" });
    for (const path of ["/admin.json", "/admin%2E", "/admin/", "/%61dmin%3Ax", "/a%C0%AF", "/x%3F"]) {
      const explained = explain(parsed.config, { method: "GET", url: `https://api.test${path}`, claims: decodeJwt(token) });
      const response = await gate.request(path, { headers: bearer(token) });
      await response.arrayBuffer();
      const decision = gate.logs.filter((line) => line.event === "decision").at(-1)!;
      expect(explained.status ?? 200, path).toBe(response.status);
      expect(explained.reason, path).toBe(decision.reason ?? "requirements_met");
      expect(explained.rule, path).toBe(decision.rule);
      expect(explained.path, path).toBe(decision.path);
    }
    expect(explain(parsed.config, { method: "GET", url: "/admin.json" })).toMatchObject({ path: "/admin.json", rule: "* /admin", status: 401 });
    expect(explain(parsed.config, { method: "GET", url: "/admin%2E" })).toMatchObject({ status: 400, reason: "path_trailing_dot" });
    expect(explain(parsed.config, { method: "GET", url: "/a%E0%80%AE" })).toMatchObject({ status: 400, reason: "path_invalid_utf8" });
  });
});
