import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { decodeJwt } from "jose";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ResourceServer } from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleMcp } from "../examples/mcp-server/src/index";
import { generateSigningKeys, newClients, startOidcServer, type Clients, type OidcServer } from "../test/setup/oidc-server";
import { freePort, startPortcullis, type Portcullis } from "./portcullis";

/**
 * The MCP flow end to end with the unmodified MCP TypeScript SDK client (1.32, `ClientCredentialsProvider`):
 * oidc-provider as the authorization server, Portcullis under `wrangler dev`, and the example MCP server
 * (examples/mcp-server, the same fetch handler the example Worker deploys) on loopback as its origin. Given
 * only the gate's URL the client follows the 401's `resource_metadata`, discovers the AS, gets a token for the
 * resource (RFC 8707) and lists and calls tools; the verified subject arrives at the server, the token does not.
 *
 * Step-up is shown twice: with path-only rules (/mcp/admin needs one scope more than /mcp) and with a per-tool
 * rule on /mcp itself (`admin_reset` needs mcp:admin), read from the body and from the 2026-07-28 headers.
 */

const SCOPES = ["mcp:tools", "mcp:admin"] as const;

let as: OidcServer;
let clients: Clients;
let gate: Portcullis;
let mcpOrigin: Server;
let resource: string;
/** What the MCP server received, per request (headers only). */
const received: { path: string; headers: IncomingMessage["headers"] }[] = [];

/** A Node HTTP server around the example's web-standard fetch handler. */
async function startMcpOrigin(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    // startPortcullis's readiness probe (a public route) is answered here, not by the MCP server.
    if (req.url?.startsWith("/public/")) return void res.writeHead(200).end("ready");
    received.push({ path: req.url ?? "", headers: req.headers });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    const response = await handleMcp(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, ...(body ? { body } : {}) }));
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  const port = await freePort();
  const gateUrl = `http://127.0.0.1:${port}`;
  resource = `${gateUrl}/mcp`;
  clients = newClients();
  const jwt = (audience: string): ResourceServer => ({ scope: SCOPES.join(" "), audience, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } });
  as = await startOidcServer({
    name: "the MCP e2e authorization server",
    clients,
    scopes: SCOPES,
    keys: await generateSigningKeys([{ kid: "p256-mcp", generate: "ES256", alg: "ES256" }]),
    idTokenAlg: "ES256",
    store: new Map(),
    resources: new Map([
      [resource, jwt(resource)],
      ["https://other-mcp.e2e/mcp", jwt("https://other-mcp.e2e/mcp")],
    ]),
  });
  const origin = await startMcpOrigin();
  mcpOrigin = origin.server;
  gate = await startPortcullis({
    port,
    vars: {
      ORIGIN_URL: origin.url,
      PORTCULLIS_CONFIG: {
        realm: "mcp",
        resource_metadata: { resource, authorization_servers: [as.issuer], resource_name: "Notes MCP server" },
        issuers: [{ issuer: as.issuer, audiences: [resource], algorithms: ["ES256"] }],
        routes: [
          { path: "/public/**", access: "public" },
          {
            path: "/mcp",
            methods: ["POST", "GET", "DELETE"],
            scopes: ["mcp:tools"],
            // Per-tool rules: admin_reset needs mcp:admin on top of the route's mcp:tools; anything unlisted is refused.
            mcp: {
              operations: [
                { method: "initialize" },
                { method: "notifications/initialized" },
                { method: "ping" },
                { method: "tools/list" },
                { method: "tools/call", name: "echo" },
                { method: "tools/call", name: "whoami" },
                { method: "tools/call", name: "admin_reset", scopes: ["mcp:admin"] },
              ],
            },
          },
          { path: "/mcp/admin", methods: ["POST", "GET", "DELETE"], scopes: ["mcp:tools", "mcp:admin"] },
        ],
      },
    },
    secrets: {},
  });
});

afterAll(async () => {
  if (process.env.PORTCULLIS_E2E_LOGS && gate) console.log(gate.output.join("\n"));
  await gate?.stop();
  await new Promise((resolve) => mcpOrigin?.close(resolve));
  await as?.close();
});

/**
 * The SDK's client-credentials provider for `api-client` (limited to this AS), asking for the scopes the
 * gate's challenges name. SDK 1.32 reads a challenge's `scope` (401 and 403 step-up) but its
 * client-credentials token request sends the provider's configured `scope` only, so the scope is widened here
 * from the challenge the transport received: the one addition to the unmodified SDK.
 */
class ChallengeScopedProvider extends ClientCredentialsProvider {
  scopes = new Set<string>();
  widen(scope: string): void {
    for (const value of scope.split(" ").filter(Boolean)) this.scopes.add(value);
    (this.clientMetadata as { scope?: string }).scope = [...this.scopes].join(" ");
  }
}
const provider = () => new ChallengeScopedProvider({ clientId: clients.api.id, clientSecret: clients.api.secret, expectedIssuer: as.issuer });

/** The transport's fetch: every 401/403 challenge's `scope="..."` widens what the provider asks for. */
const widening =
  (authProvider: ChallengeScopedProvider): typeof fetch =>
  async (input, init) => {
    const response = await fetch(input, init);
    const scope = /(?:^|[ ,])scope="([^"]*)"/.exec(response.headers.get("www-authenticate") ?? "")?.[1];
    if ((response.status === 401 || response.status === 403) && scope) authProvider.widen(scope);
    return response;
  };

async function connect(path: string, authProvider = provider()): Promise<{ client: Client; transport: StreamableHTTPClientTransport; authProvider: ChallengeScopedProvider }> {
  const client = new Client({ name: "portcullis-e2e", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(gate.url + path), { authProvider, fetch: widening(authProvider) });
  await client.connect(transport);
  return { client, transport, authProvider };
}

const textOf = (result: Awaited<ReturnType<Client["callTool"]>>) => (result.content as { type: string; text: string }[])[0]!.text;

describe("MCP through Portcullis with the MCP SDK client (oidc-provider, wrangler dev)", () => {
  it("given only the gate URL: 401 -> resource_metadata -> AS discovery -> token for the resource (RFC 8707) -> tools/list and tools/call", async () => {
    const { client, authProvider } = await connect("/mcp");
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(["admin_reset", "echo", "whoami"]);
    expect(textOf(await client.callTool({ name: "echo", arguments: { text: "hello through the gate" } }))).toBe("hello through the gate");

    // The discovery the client made: the challenge's metadata URL, then the AS's RFC 8414 metadata.
    const first = gate.logs.find((line) => line.event === "decision" && line.path === "/mcp")!;
    expect(first).toMatchObject({ outcome: "deny", status: 401, reason: "token_missing" });
    expect(gate.logs.some((line) => line.outcome === "metadata" && line.path === "/.well-known/oauth-protected-resource/mcp")).toBe(true);
    expect(as.requests).toContain("GET /.well-known/oauth-authorization-server");
    // The token: for exactly this resource, with the scope the challenge named.
    const token = authProvider.tokens()!.access_token;
    expect(decodeJwt(token)).toMatchObject({ aud: resource, scope: "mcp:tools", iss: as.issuer });
    await client.close();
  });

  it("the verified subject arrives at the MCP server; the client's token never does", async () => {
    const { client, authProvider } = await connect("/mcp");
    const caller = JSON.parse(textOf(await client.callTool({ name: "whoami", arguments: {} })));
    expect(caller).toEqual({ sub: "api-client", clientId: "api-client", scopes: ["mcp:tools"], sawAuthorization: false });
    const token = authProvider.tokens()!.access_token;
    for (const request of received) {
      expect(request.headers.authorization).toBeUndefined();
      expect(JSON.stringify(request.headers)).not.toContain(token.split(".")[1]!.slice(0, 24));
    }
    await client.close();
  });

  it("a token for another resource (another MCP server's audience) is refused: 401 invalid_token, nothing at the server", async () => {
    const body = new URLSearchParams({ grant_type: "client_credentials", scope: "mcp:tools", resource: "https://other-mcp.e2e/mcp" });
    const basic = `Basic ${Buffer.from(`${clients.api.id}:${clients.api.secret}`).toString("base64")}`;
    const issued = (await (await fetch(as.tokenEndpoint, { method: "POST", headers: { authorization: basic }, body })).json()) as { access_token: string };
    expect(decodeJwt(issued.access_token).aud).toBe("https://other-mcp.e2e/mcp");
    const before = received.length;
    const response = await fetch(`${gate.url}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${issued.access_token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(response.headers.get("www-authenticate")).toContain(`resource_metadata="${gate.url}/.well-known/oauth-protected-resource/mcp"`);
    await response.arrayBuffer();
    await gate.waitForLog((line) => line.reason === "audience_mismatch");
    expect(received.length).toBe(before);
  });

  it("a 403 names the scope; the client widens its scope from the challenge and then passes (path-only rules: /mcp/admin)", async () => {
    // A client that already holds an mcp:tools token (from /mcp) connects to the administrators' endpoint.
    const { client: first, authProvider } = await connect("/mcp");
    await first.close();
    const narrow = authProvider.tokens()!.access_token;
    expect(decodeJwt(narrow).scope).toBe("mcp:tools");
    const { client } = await connect("/mcp/admin", authProvider);
    const refusal = gate.logs.find((line) => line.event === "decision" && line.path === "/mcp/admin" && line.status === 403);
    expect(refusal).toMatchObject({ reason: "scope_missing" });
    const widened = authProvider.tokens()!.access_token;
    expect(decodeJwt(widened).scope).toBe("mcp:tools mcp:admin");
    expect(textOf(await client.callTool({ name: "admin_reset", arguments: {} }))).toBe("reset by api-client");
    await client.close();
  });

  it("the 403 challenge itself names every scope the rule needs (what the client widened to)", async () => {
    const { authProvider, client } = await connect("/mcp");
    await client.close();
    const response = await fetch(`${gate.url}/mcp/admin`, {
      method: "POST",
      headers: { authorization: `Bearer ${authProvider.tokens()!.access_token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("www-authenticate")).toBe(
      `Bearer realm="mcp", error="insufficient_scope", error_description="The access token does not grant the required scope", scope="mcp:tools mcp:admin", resource_metadata="${gate.url}/.well-known/oauth-protected-resource/mcp"`,
    );
    await response.arrayBuffer();
  });

  it("per-tool rule on /mcp itself: admin_reset with an mcp:tools token is 403 naming mcp:admin; the SDK client widens from the challenge and the call passes", async () => {
    const { client, authProvider } = await connect("/mcp");
    expect(decodeJwt(authProvider.tokens()!.access_token).scope).toBe("mcp:tools");
    expect(textOf(await client.callTool({ name: "echo", arguments: { text: "allowed" } }))).toBe("allowed");
    const before = received.length;
    // The SDK transport answers a 403 insufficient_scope by re-authorizing with the challenge's scope and retrying.
    expect(textOf(await client.callTool({ name: "admin_reset", arguments: {} }))).toBe("reset by api-client");
    const refusal = gate.logs.findLast((line) => line.event === "decision" && line.status === 403 && line.path === "/mcp");
    expect(refusal).toMatchObject({ reason: "scope_missing", operation: "tools/call admin_reset" });
    expect(decodeJwt(authProvider.tokens()!.access_token).scope).toBe("mcp:tools mcp:admin");
    // Only the retried, authorized call reached the server.
    expect(received.length - before).toBe(1);
    await client.close();
  });

  it("the same per-tool rule holds when the client sends the 2026-07-28 Mcp-Method / Mcp-Name headers and when it sends only a body; a header that disagrees with the body is 400", async () => {
    const { client, authProvider } = await connect("/mcp");
    await client.close();
    const narrow = authProvider.tokens()!.access_token;
    const body = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "admin_reset", arguments: {} } });
    const post = async (headers: Record<string, string>) => {
      const response = await fetch(`${gate.url}/mcp`, {
        method: "POST",
        headers: { authorization: `Bearer ${narrow}`, "content-type": "application/json", accept: "application/json, text/event-stream", "x-e2e-case": "per-tool-headers", ...headers },
        body,
      });
      await response.arrayBuffer();
      return response;
    };
    const bodyOnly = await post({});
    expect(bodyOnly.status).toBe(403);
    expect(bodyOnly.headers.get("www-authenticate")).toContain('scope="mcp:tools mcp:admin"');
    const next = { "mcp-protocol-version": "2026-07-28" };
    const withHeaders = await post({ ...next, "mcp-method": "tools/call", "mcp-name": "admin_reset" });
    expect(withHeaders.status).toBe(403);
    expect(withHeaders.headers.get("www-authenticate")).toContain('scope="mcp:tools mcp:admin"');
    // Headers naming an allowed tool over a body calling admin_reset: refused, never the header tool's rule.
    const lying = await post({ ...next, "mcp-method": "tools/call", "mcp-name": "echo" });
    expect(lying.status).toBe(400);
    expect(lying.headers.get("www-authenticate")).toContain('error="invalid_request"');
    // None of the three reached the server (the SDK client's own session traffic may still arrive meanwhile).
    expect(received.filter((request) => request.headers["x-e2e-case"] === "per-tool-headers")).toEqual([]);
  });
});
