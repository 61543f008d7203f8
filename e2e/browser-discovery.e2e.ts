import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOrigin, type Origin } from "./origin";
import { freePort, startPortcullis, type Portcullis } from "./portcullis";

/**
 * THREATS K3 in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) on
 * a page served from one loopback origin (`http://localhost:<port>`) discovers Portcullis under `wrangler
 * dev` on another (`http://127.0.0.1:<port>`): it reads the `WWW-Authenticate` challenge of a 401 from page
 * JavaScript, follows its `resource_metadata` to the document (with a header that forces a preflight, as MCP
 * clients send `MCP-Protocol-Version`), and cannot read anything with credentials. `.ci/run` installs
 * chromium when it is missing.
 */

const CHROMIUM = process.env.PORTCULLIS_CHROMIUM ?? "/usr/bin/chromium";
/** The launch flags this machine needs (no sandbox as root, no background connections to the closed network). */
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let gate: Portcullis;
let origin: Origin;
let pageServer: Server;
let pageOrigin: string;
let profile: string;
let context: BrowserContext;
let page: Page;

function config(gateUrl: string) {
  const as = "http://127.0.0.1:9/";
  return {
    realm: "portcullis-browser",
    resource_metadata: [
      { resource: gateUrl, authorization_servers: [as] },
      { resource: `${gateUrl}/mcp`, authorization_servers: [as], resource_name: "MCP server" },
    ],
    // Never contacted: the browser presents no token that gets as far as a key lookup.
    issuers: [{ issuer: as, audiences: [gateUrl], jwks_uri: `${as}jwks` }],
    routes: [
      { path: "/public/**", access: "public" },
      { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
      { path: "/mcp", methods: ["POST", "GET", "DELETE"], scopes: ["mcp:tools"] },
    ],
  };
}

beforeAll(async () => {
  origin = await startOrigin();
  const port = await freePort();
  const gateUrl = `http://127.0.0.1:${port}`;
  gate = await startPortcullis({ port, vars: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: config(gateUrl) }, secrets: {} });
  pageServer = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!doctype html><title>client</title><p>an MCP client page</p>");
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
  // `localhost` here and `127.0.0.1` for the gate: another host and another port, so another origin.
  pageOrigin = `http://localhost:${(pageServer.address() as AddressInfo).port}`;
  profile = await mkdtemp(join(tmpdir(), "portcullis-chromium-"));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  page = await context.newPage();
  await page.goto(`${pageOrigin}/`);
});

afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await new Promise((resolve) => pageServer?.close(resolve));
  await gate?.stop();
  await origin?.close();
});

interface Seen {
  ok: boolean;
  status?: number;
  challenge?: string | null;
  body?: unknown;
  error?: string;
}

/** A `fetch` made by the page's own script, so the browser applies CORS to it. */
async function pageFetch(url: string, init: { method?: string; headers?: Record<string, string>; credentials?: "include" | "omit" | "same-origin" } = {}): Promise<Seen> {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const response = await fetch(url, init);
        const text = await response.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Kept as text.
        }
        return { ok: true, status: response.status, challenge: response.headers.get("www-authenticate"), body };
      } catch (error) {
        return { ok: false, error: String(error) };
      }
    },
    { url, init },
  );
}

describe("T-K3 discovery from a browser on another origin (Chromium)", () => {
  it("T-K3 the page reads the 401's WWW-Authenticate, follows resource_metadata through a preflight and reads the document", async () => {
    expect(page.url().startsWith(pageOrigin)).toBe(true);
    const refused = await pageFetch(`${gate.url}/items/1`);
    expect(refused).toMatchObject({ ok: true, status: 401, body: { error: "unauthorized" } });
    expect(refused.challenge).toBe(`Bearer realm="portcullis-browser", scope="items:read", resource_metadata="${gate.url}/.well-known/oauth-protected-resource"`);
    const url = /resource_metadata="([^"]+)"/.exec(refused.challenge!)![1]!;
    // A non-safelisted header (as MCP clients send) makes the browser preflight first; the gate answers it.
    const metadata = await pageFetch(url, { headers: { "mcp-protocol-version": "2025-11-25" } });
    expect(metadata).toMatchObject({ ok: true, status: 200, body: { resource: gate.url, scopes_supported: ["items:read"] } });
    const preflight = await gate.waitForLog((line) => line.outcome === "metadata_preflight");
    expect(preflight).toMatchObject({ status: 204, method: "OPTIONS" });
  });

  it("T-K3 a second resource behind the gate: its challenge names its own path-specific document", async () => {
    const refused = await pageFetch(`${gate.url}/mcp`, { method: "POST" });
    expect(refused.status).toBe(401);
    expect(refused.challenge).toBe(`Bearer realm="portcullis-browser", scope="mcp:tools", resource_metadata="${gate.url}/.well-known/oauth-protected-resource/mcp"`);
    const metadata = await pageFetch(`${gate.url}/.well-known/oauth-protected-resource/mcp`);
    expect(metadata).toMatchObject({ status: 200, body: { resource: `${gate.url}/mcp`, resource_name: "MCP server", scopes_supported: ["mcp:tools"] } });
    // Unknown documents are 404, and readable as such.
    expect(await pageFetch(`${gate.url}/.well-known/oauth-protected-resource/other`)).toMatchObject({ ok: true, status: 404 });
  });

  it("T-K3 nothing the gate answers can be read with credentials: a credentialed fetch fails in the browser", async () => {
    for (const url of [`${gate.url}/.well-known/oauth-protected-resource`, `${gate.url}/items/1`]) {
      const seen = await pageFetch(url, { credentials: "include" });
      expect(seen.ok, url).toBe(false);
      expect(seen.error).toMatch(/TypeError/);
    }
  });

  it("T-K3 a preflight for a protected route goes to the origin, which owns its CORS (this origin grants none: the browser refuses)", async () => {
    const gets = () => gate.logs.filter((line) => line.event === "decision" && line.path === "/items/1" && line.method === "GET").length;
    const before = gets();
    const seen = await pageFetch(`${gate.url}/items/1`, { headers: { authorization: "Bearer a.b.c" } });
    expect(seen.ok).toBe(false);
    expect(origin.seen("/items/1").map((request) => request.method)).toEqual(["OPTIONS"]);
    await gate.waitForLog((line) => line.outcome === "allow_preflight" && line.path === "/items/1");
    // The actual request never left the browser.
    expect(gets()).toBe(before);
  });
});
