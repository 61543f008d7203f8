import { beforeAll, describe, expect, it } from "vitest";
import { baseConfig, bearer, expectRejected, mint, originSaw, setup, type Fixture, type Gate, type TestKey } from "../helpers";

/**
 * MCP operations through the whole gate (both mounts): per-tool rules, the operation read from the body and
 * the SEP-2243 headers, every rejection from the attacker's side (THREATS K1, K2) with nothing reaching the
 * origin, and what is allowed reaching it byte for byte with the verified identity.
 */

const TOOLS = [
  { method: "initialize" },
  { method: "notifications/initialized" },
  { method: "tools/list" },
  { method: "tools/call", name: "search" },
  { method: "tools/call", name: "admin_reset", scopes: ["mcp:admin"] },
  { method: "tools/call", name: "report_*", scopes: ["mcp:reports"] },
  { method: "resources/read", name: "file:///docs/*" },
];

const config = (fixture: Fixture) =>
  baseConfig(fixture, {
    routes: [
      { path: "/mcp", scopes: ["mcp"], mcp: { operations: TOOLS, max_body_bytes: 4096 } },
      { path: "/mcp-headers", scopes: ["mcp"], mcp: { operations: TOOLS, read_body: false } },
      { path: "/mcp-responses", scopes: ["mcp"], mcp: { operations: [{ method: "tools/list" }], allow_responses: true } },
      { path: "/mcp-public", access: "public", mcp: { operations: [{ method: "tools/list" }] } },
      { path: "/mcp-trial", scopes: ["mcp"], report_only: true, mcp: { operations: [{ method: "tools/list" }] } },
      { path: "/plain/**", scopes: ["mcp"] },
    ],
  });

const call = (name: unknown, id: number | string = 1) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: { q: "ünïcode ✓" } } });
const list = { jsonrpc: "2.0", id: 1, method: "tools/list" };
const encode = (message: unknown) => (typeof message === "string" ? message : JSON.stringify(message));
const base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
const NEXT = "2026-07-28";

let gate: Gate;
let key: TestKey;
let token: string;
let adminToken: string;

/** POSTs a JSON-RPC body (a string as is) to `path`. */
function rpc(path: string, message: unknown, headers: Record<string, string> = {}, credentials: string | null = token) {
  return gate.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(credentials ? bearer(credentials) : {}), ...headers },
    body: encode(message),
  });
}

const lastDecision = () => gate.logs.filter((line) => line.event === "decision").at(-1)!;

/** The outcome logged for an answered request, after checking it reached the origin when allowed. */
async function lastDecisionOf(response: Response): Promise<unknown> {
  if (response.status === 200) await originSaw(response);
  return lastDecision().outcome;
}

/** A rejection with its logged reason. */
async function rejected(response: Promise<Response>, status: number, error: string, reason: string) {
  const answer = await expectRejected(gate, await response, status, error);
  expect(lastDecision().reason).toBe(reason);
  return answer;
}

beforeAll(async () => {
  ({ gate, key } = await setup(config));
  token = await mint(key, { scope: "mcp" });
  adminToken = await mint(key, { scope: "mcp mcp:admin mcp:reports" });
});

describe("MCP operations: allowed operations reach the origin unchanged", () => {
  it("a listed tool call is forwarded with the exact bytes read, the verified identity and the operation logged", async () => {
    const body = `{ "jsonrpc":"2.0",  "id":"a\\u0041", "method":"tools/call",\n"params":{"name":"search","arguments":{"q":"ünïcode ✓","n":1.50}} }`;
    const seen = await originSaw(await rpc("/mcp", body, { "x-auth-sub": "forged" }));
    expect(seen.bodyBase64).toBe(base64(body));
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
    expect(lastDecision()).toMatchObject({ outcome: "allow", rule: "* /mcp", operation: "tools/call search" });
  });

  it("with the 2026-07-28 headers agreeing, and through the header-only route, the body still arrives byte for byte", async () => {
    const body = encode(call("search"));
    const headers = { "mcp-protocol-version": NEXT, "mcp-method": "tools/call", "mcp-name": "search" };
    expect((await originSaw(await rpc("/mcp", body, headers))).bodyBase64).toBe(base64(body));
    expect((await originSaw(await rpc("/mcp-headers", body, headers))).bodyBase64).toBe(base64(body));
    expect(lastDecision()).toMatchObject({ outcome: "allow", operation: "tools/call search" });
  });

  it("a body streamed without a length arrives whole and unchanged", async () => {
    const bytes = new TextEncoder().encode(encode(call("search")));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
        controller.close();
      },
    });
    const seen = await originSaw(await gate.request("/mcp", { method: "POST", headers: { ...bearer(token), "content-type": "application/json" }, body: stream }));
    expect(seen.bodyBase64).toBe(base64(encode(call("search"))));
  });

  it("an Mcp-Name in the Base64 sentinel agreeing with the body is allowed", async () => {
    const body = encode({ jsonrpc: "2.0", id: 3, method: "resources/read", params: { uri: "file:///docs/ä b.md" } });
    const headers = { "mcp-method": "resources/read", "mcp-name": `=?base64?${base64("file:///docs/ä b.md")}?=` };
    expect((await originSaw(await rpc("/mcp", body, headers))).bodyBase64).toBe(base64(body));
  });

  it("a tool needing more scopes is allowed to a token that has them; a pattern's scopes apply to each name it covers", async () => {
    await originSaw(await rpc("/mcp", call("admin_reset"), {}, adminToken));
    await originSaw(await rpc("/mcp", call("report_daily"), {}, adminToken));
  });

  it("a listed notification is forwarded", async () => {
    await originSaw(await rpc("/mcp", { jsonrpc: "2.0", method: "notifications/initialized" }));
  });

  it("GET (the 2025-11-25 SSE stream) and DELETE (session end) carry no operation: the rule's own requirements decide", async () => {
    const stream = await gate.request("/mcp", { headers: { ...bearer(token), accept: "text/event-stream", "mcp-session-id": "s-1" } });
    expect((await originSaw(stream)).method).toBe("GET");
    expect(lastDecision()).not.toHaveProperty("operation");
    expect((await originSaw(await gate.request("/mcp", { method: "DELETE", headers: { ...bearer(token), "mcp-session-id": "s-1" } }))).method).toBe("DELETE");
    await expectRejected(gate, await gate.request("/mcp", { headers: { accept: "text/event-stream" } }), 401);
  });

  it("a route without mcp keeps path-only behaviour: any body, a batch included, is forwarded untouched", async () => {
    const body = encode([call("admin_reset"), list]);
    expect((await originSaw(await rpc("/plain/mcp", body))).bodyBase64).toBe(base64(body));
  });

  it("a client-sent response is allowed where allow_responses is set", async () => {
    await originSaw(await rpc("/mcp-responses", { jsonrpc: "2.0", id: 9, result: { roots: [] } }));
    expect(lastDecision()).toMatchObject({ operation: "response" });
  });

  it("a public MCP route allows its listed operations without a token, and never forwards client identity headers", async () => {
    const seen = await originSaw(await rpc("/mcp-public", list, { "x-auth-sub": "forged", "x-auth-scope": "mcp:admin" }, null));
    expect(seen.headers["x-auth-sub"]).toBeUndefined();
    expect(seen.headers["x-auth-scope"]).toBeUndefined();
  });
});

describe("T-K1 headers that disagree with the body", () => {
  it("T-K1 Mcp-Method tools/list over a body calling admin_reset is a 400, never tools/list's rule, even for an admin token", async () => {
    for (const credentials of [token, adminToken]) {
      await rejected(rpc("/mcp", call("admin_reset"), { "mcp-method": "tools/list" }, credentials), 400, "invalid_request", "mcp_header_mismatch");
    }
  });

  it("T-K1 an Mcp-Name naming another tool, another case or an encoded other name is a 400", async () => {
    for (const name of ["search", "Admin_Reset", `=?base64?${base64("search")}?=`]) {
      await rejected(rpc("/mcp", call("admin_reset"), { "mcp-method": "tools/call", "mcp-name": name }, adminToken), 400, "invalid_request", "mcp_header_mismatch");
    }
  });

  it("T-K1 a header naming what the body lacks (no params.name, or a method without names) is a 400", async () => {
    await rejected(rpc("/mcp", { jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }, { "mcp-method": "tools/call", "mcp-name": "search" }), 400, "invalid_request", "mcp_header_mismatch");
    await rejected(rpc("/mcp", list, { "mcp-name": "search" }), 400, "invalid_request", "mcp_header_mismatch");
    await rejected(rpc("/mcp", { jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }), 400, "invalid_request", "mcp_name_missing");
  });

  it("T-K1 a malformed Base64 sentinel in Mcp-Name is a 400", async () => {
    await rejected(rpc("/mcp", call("search"), { "mcp-name": "=?base64?***?=" }), 400, "invalid_request", "mcp_header_invalid");
  });

  it("T-K1 a body that is not one JSON-RPC message is a 400: not JSON, two messages, repeated or look-alike member names, no body", async () => {
    const bodies: [string, string][] = [
      ["{", "mcp_body_invalid"],
      [`${encode(list)}${encode(call("admin_reset"))}`, "mcp_body_invalid"],
      [`${encode(list)}\n${encode(call("admin_reset"))}`, "mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}', "mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"admin_reset"}}', "mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"admin_reset"}}', "mcp_message_invalid"],
      ["", "mcp_body_invalid"],
      ['{"id":1,"method":"tools/list"}', "mcp_message_invalid"],
    ];
    for (const [body, reason] of bodies) await rejected(rpc("/mcp", body), 400, "invalid_request", reason);
  });

  it("T-K1 a body over max_body_bytes is a 413, declared or streamed without a length", async () => {
    const big = encode(call("x".repeat(5000)));
    await rejected(rpc("/mcp", big), 413, "payload_too_large", "mcp_body_too_large");
    const chunk = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk.slice(0, 2000));
        controller.enqueue(chunk.slice(2000));
        controller.close();
      },
    });
    await rejected(gate.request("/mcp", { method: "POST", headers: bearer(token), body: stream }), 413, "payload_too_large", "mcp_body_too_large");
  });

  it("T-K1 header-only reading (read_body = false) needs Mcp-Method, Mcp-Name for named methods, and a 2026-07-28 client", async () => {
    await rejected(rpc("/mcp-headers", call("search")), 400, "invalid_request", "mcp_method_missing");
    await rejected(rpc("/mcp-headers", call("search"), { "mcp-method": "tools/call", "mcp-name": "search" }), 400, "invalid_request", "mcp_protocol_version");
    await rejected(rpc("/mcp-headers", call("search"), { "mcp-protocol-version": "2025-11-25", "mcp-method": "tools/call", "mcp-name": "search" }), 400, "invalid_request", "mcp_protocol_version");
    await rejected(rpc("/mcp-headers", call("search"), { "mcp-protocol-version": NEXT, "mcp-method": "tools/call" }), 400, "invalid_request", "mcp_name_missing");
    await rejected(rpc("/mcp-headers", call("search"), { "mcp-protocol-version": NEXT, "mcp-method": "tools/call", "mcp-name": "admin_reset" }), 403, "insufficient_scope", "scope_missing");
  });
});

describe("MCP operations in challenges and metadata", () => {
  it("a 401 names the scopes of the operation read from the body, beside the route's; refusals before the operation is known name the route's", async () => {
    const challengeOf = async (response: Response) => (await expectRejected(gate, response, 401)).challenge;
    expect(await challengeOf(await rpc("/mcp", call("admin_reset"), {}, null))).toContain('scope="mcp mcp:admin"');
    expect(await challengeOf(await rpc("/mcp", call("report_daily"), {}, "not-a-jwt"))).toContain('scope="mcp mcp:reports"');
    const plain = await challengeOf(await rpc("/mcp", call("search"), {}, null));
    expect(plain).toContain('scope="mcp"');
    expect(plain).not.toContain("mcp:admin");
  });

  it("scopes_supported in the resource metadata counts every operation's scopes", async () => {
    const withMetadata = await setup((fixture) => ({
      ...config(fixture),
      resource_metadata: { resource: "https://api.test/mcp", authorization_servers: ["https://issuer.test/"] },
    }));
    const document = (await (await withMetadata.gate.request("/.well-known/oauth-protected-resource/mcp")).json()) as { scopes_supported: string[] };
    expect(document.scopes_supported).toEqual(expect.arrayContaining(["mcp", "mcp:admin", "mcp:reports"]));
  });
});

describe("T-K2 a rule for one tool authorizes that tool only", () => {
  it("T-K2 admin_reset needs its own scope: 403 insufficient_scope naming every scope the operation needs", async () => {
    const { challenge } = await rejected(rpc("/mcp", call("admin_reset")), 403, "insufficient_scope", "scope_missing");
    expect(challenge).toContain('scope="mcp mcp:admin"');
  });

  it("T-K2 another tool, or admin_reset differently cased, padded, cut, extended or spelled with look-alikes, is not listed: 403", async () => {
    const names = ["Admin_Reset", "ADMIN_RESET", " admin_reset", "admin_reset ", "admin_reset\u0000", "admin_rese", "admin_resetx", "xadmin_reset", "аdmin_reset", "admin_reset\u200b", "admin\uff3freset", "delete_all", "report_", "Report_daily"];
    for (const name of names.slice(0, -2)) await rejected(rpc("/mcp", call(name), {}, adminToken), 403, "access_denied", "mcp_operation_not_listed");
    // `report_*` covers `report_` (the * may match nothing) but never `Report_daily`.
    await originSaw(await rpc("/mcp", call("report_"), {}, adminToken));
    await rejected(rpc("/mcp", call("Report_daily"), {}, adminToken), 403, "access_denied", "mcp_operation_not_listed");
  });

  it("T-K2 a batch is refused (400), even one whose every member is listed", async () => {
    await rejected(rpc("/mcp", [list], {}, adminToken), 400, "invalid_request", "mcp_batch");
    await rejected(rpc("/mcp", [call("search"), call("admin_reset", 2)], {}, adminToken), 400, "invalid_request", "mcp_batch");
  });

  it("T-K2 methods differing in case or padding, and unknown methods, are not listed", async () => {
    for (const method of ["Tools/List", "tools/list ", " tools/list", "TOOLS/LIST", "tools/delete", "constructor", "__proto__", "tools/call/", "notifications/cancelled"]) {
      await rejected(rpc("/mcp", { jsonrpc: "2.0", id: 1, method }, {}, adminToken), 403, "access_denied", "mcp_operation_not_listed");
    }
  });

  it("T-K2 a resource pattern covers only its prefix", async () => {
    await originSaw(await rpc("/mcp", { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: "file:///docs/a.md" } }));
    for (const uri of ["file:///etc/passwd", "file:///docs", "FILE:///docs/a.md", "file:///Docs/a.md"]) {
      await rejected(rpc("/mcp", { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri } }), 403, "access_denied", "mcp_operation_not_listed");
    }
  });

  it("T-K2 a DELETE or PUT carrying a body is read as a message like a POST: an unlisted tool stays refused", async () => {
    for (const method of ["DELETE", "PUT", "PATCH"]) {
      await rejected(gate.request("/mcp", { method, headers: bearer(adminToken), body: encode(call("delete_all")) }), 403, "access_denied", "mcp_operation_not_listed");
    }
    await rejected(gate.request("/mcp", { method: "PUT", headers: bearer(adminToken) }), 400, "invalid_request", "mcp_body_invalid");
  });

  it("T-K2 a client-sent response is refused where allow_responses is not set", async () => {
    await rejected(rpc("/mcp", { jsonrpc: "2.0", id: 9, result: {} }), 403, "access_denied", "mcp_response_not_allowed");
  });

  it("T-K2 a body in another charset is refused: UTF-7 hides a second name an origin honouring the charset reads (body-parser, older SDK transports)", async () => {
    // UTF-7 of `","name":"admin_reset`: as UTF-8 one `name` (search); decoded as UTF-7, JSON.parse keeps the last (admin_reset).
    const smuggled = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","x":"+ACI-,+ACI-name+ACI-:+ACI-admin+AF8-reset"}}';
    for (const type of ["application/json; charset=utf-7", "application/json;charset=UTF-7", 'application/json; charset="utf-16"', "application/json; charset=iso-8859-1", "text/plain; charset=utf-7"]) {
      await rejected(rpc("/mcp", smuggled, { "content-type": type }), 400, "invalid_request", "mcp_charset_unsupported");
    }
    // Ambiguous declarations: two charsets, two joined Content-Types, a charset without a value.
    for (const type of ["application/json; charset=utf-8; charset=utf-7", "application/json, application/json; charset=utf-7", "application/json; charset", "application/json; xcharset=utf-8"]) {
      await rejected(rpc("/mcp", call("search"), { "content-type": type }), 400, "invalid_request", "mcp_charset_unsupported");
    }
    // UTF-8 declared in any spelling, or nothing declared, is read as the gate reads it.
    for (const type of ["application/json; charset=utf-8", 'application/json; charset="UTF-8"', "application/json ; Charset = utf-8", "application/json"]) {
      expect(await lastDecisionOf(await rpc("/mcp", call("search"), { "content-type": type }))).toBe("allow");
    }
  });

  it("T-K2 a body with a content coding is refused: the origin would read what the gate did not", async () => {
    for (const coding of ["gzip", "br", "deflate", "identity, gzip"]) {
      await rejected(rpc("/mcp", call("search"), { "content-encoding": coding }), 400, "invalid_request", "mcp_body_encoded");
    }
    expect(await lastDecisionOf(await rpc("/mcp", call("search"), { "content-encoding": "identity" }))).toBe("allow");
  });

  it("a body stream that fails part-way (the client went away) is a 400, not a 500, and nothing is forwarded", async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"jsonrpc":"2.0","id":1,'));
        controller.error(new Error("connection reset"));
      },
    });
    await rejected(gate.request("/mcp", { method: "POST", headers: { ...bearer(token), "content-type": "application/json" }, body: stream }), 400, "invalid_request", "mcp_body_unreadable");
  });

  it("T-K2 an unlisted operation on a public MCP route is refused too", async () => {
    await rejected(rpc("/mcp-public", call("search"), {}, null), 403, "access_denied", "mcp_operation_not_listed");
  });

  it("no token on an MCP token route is a 401 before anything is said about operations", async () => {
    await expectRejected(gate, await rpc("/mcp", call("delete_all"), {}, null), 401);
    expect(lastDecision()).toMatchObject({ reason: "token_missing", operation: "tools/call delete_all" });
  });

  it("report-only relaxes an unlisted operation to a logged would-be refusal, never a malformed message", async () => {
    await originSaw(await rpc("/mcp-trial", call("admin_reset")));
    expect(lastDecision()).toMatchObject({ report_only: true, would: { status: 403, reason: "mcp_operation_not_listed" } });
    await rejected(rpc("/mcp-trial", [list]), 400, "invalid_request", "mcp_batch");
  });
});
