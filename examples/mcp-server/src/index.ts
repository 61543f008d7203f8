import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";

/**
 * An MCP server Worker (streamable HTTP, stateless, JSON responses) built with the MCP TypeScript SDK, meant
 * to sit behind Portcullis: it has no public route of its own (wrangler.toml: `workers_dev = false`, no
 * routes), so the only way in is Portcullis's service binding, and every request it sees was authorized
 * there. It never sees the client's access token (Portcullis strips `Authorization`): it trusts the verified
 * identity headers Portcullis sets (`x-auth-sub`, `x-auth-client-id`, `x-auth-scope`) and nothing else.
 */

/** The verified identity Portcullis forwarded (its `x-auth-*` headers; client copies are always stripped). */
export interface Caller {
  sub: string | null;
  clientId: string | null;
  scopes: string[];
}

export function callerOf(headers: Headers): Caller {
  return {
    sub: headers.get("x-auth-sub"),
    clientId: headers.get("x-auth-client-id"),
    scopes: (headers.get("x-auth-scope") ?? "").split(" ").filter(Boolean),
  };
}

/** The server for one request: tools answer with what Portcullis verified about the caller. */
export function notesServer(caller: Caller, sawAuthorization: boolean): McpServer {
  const server = new McpServer({ name: "portcullis-example-notes", version: "1.0.0" });
  server.registerTool("whoami", { description: "The caller as Portcullis verified it" }, async () => ({
    content: [{ type: "text", text: JSON.stringify({ ...caller, sawAuthorization }) }],
  }));
  server.registerTool("echo", { description: "Echoes text back", inputSchema: { text: z.string().max(1000) } }, async ({ text }) => ({
    content: [{ type: "text", text }],
  }));
  // Destructive: Portcullis decides who may call it (README "MCP recipe": a rule for this tool, or a path of its own).
  server.registerTool("admin_reset", { description: "Resets every note (administrators only)" }, async () => ({
    content: [{ type: "text", text: `reset by ${caller.sub ?? "unknown"}` }],
  }));
  return server;
}

/** One MCP request (POST /mcp, or /mcp/admin for the administrators' endpoint); anything else 404. */
export async function handleMcp(request: Request): Promise<Response> {
  const { pathname } = new URL(request.url);
  if (pathname !== "/mcp" && pathname !== "/mcp/admin") return new Response("not found", { status: 404 });
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  const server = notesServer(callerOf(request.headers), request.headers.has("authorization"));
  await server.connect(transport);
  return transport.handleRequest(request);
}

export default { fetch: handleMcp } satisfies ExportedHandler;
