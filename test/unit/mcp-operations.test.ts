import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { McpConfig } from "../../src/config/schema";
import { GateError } from "../../src/errors/errors";
import { mcpMessage, type McpMessage } from "../../src/extract/mcp";
import { parseJsonStrict } from "../../src/lib/json";
import { compileOperations, matchOperation, type OperationRequest } from "../../src/policy/mcp";

/**
 * MCP operations, pure: which listed operation a message gets (precedence, byte-exact names), how a message
 * is read from body and headers (K1), and what configuration is refused (T-K2 ties and unmatchable names).
 */

const mcp = (operations: McpConfig["operations"], extra: Partial<McpConfig> = {}): McpConfig => ({ operations, read_body: true, max_body_bytes: 65_536, allow_responses: false, ...extra });
const op = (method: string, name?: string) => ({ method, ...(name === undefined ? {} : { name }), scopes: [], scopes_any: [], claims: [] });

/** The index (in `operations`) of the operation that applies, or undefined. */
function listed(operations: McpConfig["operations"], request: OperationRequest): number | undefined {
  return matchOperation(compileOperations(mcp(operations)), request)?.index;
}

describe("MCP operation matching", () => {
  const operations = [op("tools/call", "admin_reset"), op("tools/call", "admin_*"), op("tools/call", "*_reset"), op("tools/call", "adm*"), op("tools/call"), op("tools/list")];

  it("an exact name beats every pattern, a longer literal prefix beats a shorter, a method-only operation comes last", () => {
    expect(listed(operations, { method: "tools/call", name: "admin_reset" })).toBe(0);
    expect(listed(operations, { method: "tools/call", name: "admin_other" })).toBe(1);
    expect(listed(operations, { method: "tools/call", name: "adminx" })).toBe(3);
    expect(listed(operations, { method: "tools/call", name: "db_reset" })).toBe(2);
    expect(listed(operations, { method: "tools/call", name: "search" })).toBe(4);
    expect(listed(operations, { method: "tools/list", name: undefined })).toBe(5);
  });

  it("a longer literal suffix decides between patterns of equal prefix", () => {
    expect(listed([op("tools/call", "a*"), op("tools/call", "a*_x")], { method: "tools/call", name: "ab_x" })).toBe(1);
  });

  it("T-K2 a rule for one tool never matches another tool, or a differently cased, padded, prefixed, suffixed or look-alike name", () => {
    const only = [op("tools/call", "admin_reset")];
    const others = ["Admin_Reset", "ADMIN_RESET", " admin_reset", "admin_reset ", "admin_reset\u0000", "admin_rese", "admin_resetx", "xadmin_reset", "admin\u2010reset", "аdmin_reset", "admin_reset\u200b", "ad\u0301min_reset", "search", ""];
    for (const name of others) expect(listed(only, { method: "tools/call", name }), JSON.stringify(name)).toBeUndefined();
    expect(listed(only, { method: "tools/call", name: "admin_reset" })).toBe(0);
  });

  it("T-K2 methods are compared exactly: case, padding and prefixes never match", () => {
    const only = [op("tools/list")];
    for (const method of ["Tools/List", "tools/list ", " tools/list", "tools/lis", "tools/listx", "tools/list\u0000", "tools\\list"]) {
      expect(listed(only, { method, name: undefined }), JSON.stringify(method)).toBeUndefined();
    }
  });

  it("a pattern's * matches any run of characters, none included, and never stands for the literal parts", () => {
    const glob = [op("resources/read", "file:///docs/*.md")];
    expect(listed(glob, { method: "resources/read", name: "file:///docs/.md" })).toBe(0);
    expect(listed(glob, { method: "resources/read", name: "file:///docs/a/b.md" })).toBe(0);
    expect(listed(glob, { method: "resources/read", name: "file:///docs.md" })).toBeUndefined();
    expect(listed(glob, { method: "resources/read", name: "file:///Docs/a.md" })).toBeUndefined();
  });
});

const headers = (entries: Record<string, string> = {}) => new Headers(entries);
const bytes = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
const call = (name: unknown, extra: Record<string, unknown> = {}) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: {} }, ...extra });

function reason(run: () => McpMessage): string {
  try {
    run();
  } catch (error) {
    if (error instanceof GateError) return `${error.status} ${error.reason}`;
    throw error;
  }
  return "read";
}

const body = mcp([op("tools/list")]);
const headersOnly = mcp([op("tools/list")], { read_body: false });

describe("MCP message reading", () => {
  it("reads requests, notifications and client responses from the body", () => {
    expect(mcpMessage("POST", headers(), bytes(call("search")), body)).toEqual({ kind: "request", method: "tools/call", name: "search" });
    expect(mcpMessage("POST", headers(), bytes({ jsonrpc: "2.0", method: "notifications/initialized" }), body)).toEqual({ kind: "notification", method: "notifications/initialized", name: undefined });
    expect(mcpMessage("POST", headers(), bytes({ jsonrpc: "2.0", id: 7, result: {} }), body)).toEqual({ kind: "response" });
    expect(mcpMessage("POST", headers(), bytes({ jsonrpc: "2.0", id: 2, method: "resources/read", params: { uri: "file:///a" } }), body)).toEqual({ kind: "request", method: "resources/read", name: "file:///a" });
    expect(mcpMessage("GET", headers(), undefined, body)).toEqual({ kind: "none" });
    expect(mcpMessage("DELETE", headers(), new Uint8Array(), body)).toEqual({ kind: "none" });
    expect(mcpMessage("OPTIONS", headers(), undefined, body)).toEqual({ kind: "none" });
    // Any other method, or one of these with a body, is a message.
    expect(reason(() => mcpMessage("PUT", headers(), undefined, body))).toBe("400 mcp_body_invalid");
    expect(mcpMessage("DELETE", headers(), bytes(call("search")), body)).toEqual({ kind: "request", method: "tools/call", name: "search" });
  });

  it("T-K1 a header that disagrees with the body is a 400, whichever way", () => {
    const cases: [Record<string, string>, unknown][] = [
      [{ "mcp-method": "tools/list" }, call("admin_reset")],
      [{ "mcp-method": "tools/call", "mcp-name": "search" }, call("admin_reset")],
      [{ "mcp-method": "Tools/Call" }, call("admin_reset")],
      [{ "mcp-method": "tools/call", "mcp-name": "admin_reset" }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }],
      [{ "mcp-name": "admin_reset" }, { jsonrpc: "2.0", id: 1, method: "tools/list" }],
      [{ "mcp-method": "tools/call" }, { jsonrpc: "2.0", id: 1, result: {} }],
      [{ "mcp-method": "tools/call", "mcp-name": "=?base64?c2VhcmNo?=" }, call("admin_reset")],
    ];
    for (const [sent, message] of cases) expect(reason(() => mcpMessage("POST", headers(sent), bytes(message), body)), JSON.stringify(sent)).toBe("400 mcp_header_mismatch");
    expect(reason(() => mcpMessage("GET", headers({ "mcp-method": "tools/call" }), undefined, body))).toBe("400 mcp_header_mismatch");
  });

  it("T-K1 an Mcp-Name in the Base64 sentinel is decoded before comparing; a malformed one is refused", () => {
    const encoded = `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode("héllo")))}?=`;
    expect(mcpMessage("POST", headers({ "mcp-name": encoded }), bytes(call("héllo")), body)).toMatchObject({ name: "héllo" });
    expect(reason(() => mcpMessage("POST", headers({ "mcp-name": "=?base64?!!!?=" }), bytes(call("x")), body))).toBe("400 mcp_header_invalid");
    expect(reason(() => mcpMessage("POST", headers({ "mcp-name": "=?base64?/w==?=" }), bytes(call("x")), body))).toBe("400 mcp_header_invalid");
  });

  it("T-K1 what is not exactly one JSON-RPC message is a 400 (batches, not JSON, repeated or look-alike member names, two messages)", () => {
    const cases: [string, string][] = [
      [JSON.stringify([call("search")]), "400 mcp_batch"],
      [JSON.stringify([]), "400 mcp_batch"],
      ["{not json", "400 mcp_body_invalid"],
      ["", "400 mcp_body_invalid"],
      [`${JSON.stringify(call("search"))}${JSON.stringify(call("admin_reset"))}`, "400 mcp_body_invalid"],
      [`${JSON.stringify(call("search"))}\n${JSON.stringify(call("admin_reset"))}`, "400 mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}', "400 mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"admin_reset"}}', "400 mcp_body_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call"}', "400 mcp_message_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"admin_reset"}}', "400 mcp_message_invalid"],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"admin_reset"},"params":{"name":"search"}}', "400 mcp_message_invalid"],
      ['\ufeff{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "400 mcp_body_invalid"],
      [JSON.stringify({ id: 1, method: "tools/list" }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "1.0", id: 1, method: "tools/list" }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, method: 5 }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", result: {} }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, result: {}, error: {} }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: [] }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: 5 } }), "400 mcp_message_invalid"],
      [JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }), "400 mcp_name_missing"],
      ['"tools/call"', "400 mcp_message_invalid"],
    ];
    for (const [text, expected] of cases) expect(reason(() => mcpMessage("POST", headers(), bytes(text), body)), text).toBe(expected);
    expect(reason(() => mcpMessage("POST", headers(), new Uint8Array([0x7b, 0xff, 0x7d]), body))).toBe("400 mcp_body_invalid");
  });

  it("a body over max_body_bytes is a 413", () => {
    const big = bytes(call("x".repeat(70_000)));
    expect(reason(() => mcpMessage("POST", headers(), big, body))).toBe("413 mcp_body_too_large");
  });

  it("with read_body = false the headers alone decide, only from 2026-07-28 clients", () => {
    const modern = { "mcp-protocol-version": "2026-07-28" };
    expect(mcpMessage("POST", headers({ ...modern, "mcp-method": "tools/call", "mcp-name": "search" }), undefined, headersOnly)).toEqual({ kind: "request", method: "tools/call", name: "search" });
    expect(reason(() => mcpMessage("POST", headers({ ...modern }), undefined, headersOnly))).toBe("400 mcp_method_missing");
    expect(reason(() => mcpMessage("POST", headers({ "mcp-method": "tools/list" }), undefined, headersOnly))).toBe("400 mcp_protocol_version");
    expect(reason(() => mcpMessage("POST", headers({ "mcp-protocol-version": "2025-11-25", "mcp-method": "tools/list" }), undefined, headersOnly))).toBe("400 mcp_protocol_version");
    expect(reason(() => mcpMessage("POST", headers({ ...modern, "mcp-method": "tools/call" }), undefined, headersOnly))).toBe("400 mcp_name_missing");
    expect(reason(() => mcpMessage("POST", headers({ ...modern, "mcp-method": "tools/list", "mcp-name": "x" }), undefined, headersOnly))).toBe("400 mcp_header_mismatch");
    expect(mcpMessage("GET", headers(), undefined, headersOnly)).toEqual({ kind: "none" });
  });
});

describe("strict JSON", () => {
  it("refuses repeated member names at any depth, after unescaping, and keeps everything else", () => {
    expect(() => parseJsonStrict('{"a":1,"\\u0061":2}')).toThrow(SyntaxError);
    expect(() => parseJsonStrict('{"x":[{"a":1,"a":2}]}')).toThrow(SyntaxError);
    expect(parseJsonStrict('{"a":{"a":1},"b":["a","a"],"c":"{\\"a\\":1,\\"a\\":2}"}')).toEqual({ a: { a: 1 }, b: ["a", "a"], c: '{"a":1,"a":2}' });
    expect(parseJsonStrict('{"a":1,"A":2}')).toEqual({ a: 1, A: 2 });
  });
});

const config = (operations: unknown, route: Record<string, unknown> = {}) => ({
  issuers: [{ issuer: "https://issuer.test/", audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
  routes: [{ path: "/mcp", ...route, mcp: { operations } }],
});

function issuesOf(raw: unknown): Record<string, string> {
  const result = parseConfig(raw);
  if (result.ok) throw new Error("expected the configuration to be rejected");
  return Object.fromEntries(result.issues.map((issue) => [issue.field, issue.message]));
}

describe("MCP operation configuration", () => {
  it("fills defaults", () => {
    const result = parseConfig(config([{ method: "tools/list" }]));
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(result.config.routes[0]!.mcp).toEqual({ operations: [{ method: "tools/list", scopes: [], scopes_any: [], claims: [] }], read_body: true, max_body_bytes: 1_048_576, allow_responses: false });
  });

  it("T-K2 two operations of one method with the same name shape tie and are refused, naming the second", () => {
    expect(issuesOf(config([{ method: "tools/call", name: "a" }, { method: "tools/call", name: "a", scopes: ["x"] }]))["routes.0.mcp.operations.1"]).toMatch(/same method and name shape as mcp.operations.0/);
    expect(issuesOf(config([{ method: "tools/call" }, { method: "tools/list" }, { method: "tools/call", name: "*" }]))["routes.0.mcp.operations.2"]).toMatch(/mcp.operations.0/);
    expect(issuesOf(config([{ method: "tools/call", name: "a*b" }, { method: "tools/call", name: "a*b" }]))["routes.0.mcp.operations.1"]).toBeDefined();
    // Different shapes never tie: precedence decides.
    expect(parseConfig(config([{ method: "tools/call", name: "a*" }, { method: "tools/call", name: "*a" }, { method: "tools/call", name: "a" }, { method: "tools/call" }])).ok).toBe(true);
  });

  it("refuses names that can never match, bad patterns and misplaced requirements, naming the field", () => {
    expect(issuesOf(config([{ method: "tools/list", name: "x" }]))["routes.0.mcp.operations.0.name"]).toMatch(/tools\/list carries no name/);
    expect(issuesOf(config([{ method: "tools/call", name: "a*b*" }]))["routes.0.mcp.operations.0.name"]).toMatch(/at most one \*/);
    expect(issuesOf(config([{ method: "tools/call", name: "admin\u0000" }]))["routes.0.mcp.operations.0.name"]).toMatch(/control characters/);
    expect(issuesOf(config([{ method: "tools/call", name: "" }]))["routes.0.mcp.operations.0.name"]).toMatch(/empty/);
    expect(issuesOf(config([{ method: "tools call" }]))["routes.0.mcp.operations.0.method"]).toMatch(/JSON-RPC method/);
    expect(issuesOf(config([]))["routes.0.mcp.operations"]).toMatch(/at least one/);
    expect(issuesOf(config([{ method: "tools/list", scope: ["x"] }]))["routes.0.mcp.operations.0.scope"]).toBeDefined();
    expect(issuesOf(config([{ method: "tools/list", scopes: ["x"] }], { access: "public" }))["routes.0.mcp.operations.0.scopes"]).toMatch(/access = "token"/);
    expect(issuesOf(config([{ method: "tools/list" }], { access: "deny" }))["routes.0.mcp"]).toMatch(/deny/);
    expect(issuesOf(config([{ method: "tools/list", claims: [{ claim: "a" }] }]))["routes.0.mcp.operations.0.claims.0"]).toMatch(/exactly one/);
    expect(issuesOf({ ...config([{ method: "tools/list" }]), routes: [{ path: "/mcp", mcp: { operations: [{ method: "tools/list" }], max_body_bytes: 10 } }] })["routes.0.mcp.max_body_bytes"]).toBeDefined();
  });
});
