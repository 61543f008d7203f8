import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type * as WsModule from "ws";

// Loaded through Node's require: vite resolves the bare import to ws's browser stub in this project.
const { WebSocketServer } = createRequire(import.meta.url)("ws") as typeof WsModule;

/**
 * Loopback fixtures for the tests, run in Node by vitest's globalSetup (workerd cannot listen):
 * - an issuer server: `/<ns>/jwks` serves whatever the test configured with `POST /<ns>/jwks/_set`,
 *   counts fetches (`GET /<ns>/_stats`), and can answer slowly, with any status, body or redirect;
 * - an origin server: echoes what it received as JSON and records it under the `x-test-ns` header.
 * State is per namespace, so test files running in parallel never see each other.
 */

interface JwksBehaviour {
  status: number;
  body: string;
  headers: Record<string, string>;
  delayMs: number;
}

interface IntrospectionBehaviour {
  /** Answer per token; `default` for any other token. */
  answers: Record<string, { status: number; body: string; delayMs?: number; headers?: Record<string, string> }>;
  calls: { method: string; path: string; authorization: string | null; accept: string; apiVersion: string; form: Record<string, string>; tokenIn: string }[];
}

interface Namespace {
  introspection: IntrospectionBehaviour;
  /** RFC 8414 and OIDC metadata documents; null = 404. */
  metadata: { as: unknown; oidc: unknown };
  metadataFetches: number;
  jwks: JwksBehaviour;
  jwksFetches: number;
  originRequests: OriginRecord[];
  originDelayMs: number;
  uploadFirstChunk: boolean;
}

export interface OriginRecord {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBytes: number;
  /** The body received, Base64 (absent when empty), to prove bytes reach the origin unchanged. */
  bodyBase64?: string;
}

const namespaces = new Map<string, Namespace>();

function space(ns: string): Namespace {
  let state = namespaces.get(ns);
  if (!state) {
    state = {
      introspection: { answers: {}, calls: [] },
      metadata: { as: null, oidc: null },
      metadataFetches: 0,
      jwks: { status: 404, body: "", headers: {}, delayMs: 0 },
      jwksFetches: 0,
      originRequests: [],
      originDelayMs: 0,
      uploadFirstChunk: false,
    };
    namespaces.set(ns, state);
  }
  return state;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const json = (res: ServerResponse, status: number, value: unknown) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
};

async function issuerHandler(req: IncomingMessage, res: ServerResponse) {
  const pathname = (req.url ?? "/").split("?")[0]!;
  // RFC 8414 inserts the well-known segment before the issuer's path: /.well-known/oauth-authorization-server/<ns>
  const rfc8414 = pathname.match(/^\/\.well-known\/oauth-authorization-server\/([^/]+)$/);
  if (rfc8414) {
    const state = space(rfc8414[1]!);
    state.metadataFetches++;
    return state.metadata.as ? json(res, 200, state.metadata.as) : json(res, 404, { error: "not found" });
  }
  const [, ns = "", ...rest] = pathname.split("/");
  const action = rest.join("/");
  const state = space(ns);
  if (action === "jwks/_set" && req.method === "POST") {
    const update = JSON.parse((await readBody(req)).toString()) as Partial<JwksBehaviour> & { jwks?: unknown };
    state.jwks = {
      status: update.status ?? 200,
      body: update.body ?? JSON.stringify(update.jwks ?? { keys: [] }),
      headers: update.headers ?? { "content-type": "application/json" },
      delayMs: update.delayMs ?? 0,
    };
    return json(res, 200, { ok: true });
  }
  if (action === "origin/_set" && req.method === "POST") {
    const update = JSON.parse((await readBody(req)).toString()) as { delayMs?: number };
    state.originDelayMs = update.delayMs ?? 0;
    return json(res, 200, { ok: true });
  }
  if (action === "metadata/_set" && req.method === "POST") {
    const update = JSON.parse((await readBody(req)).toString()) as { as?: unknown; oidc?: unknown };
    state.metadata = { as: update.as ?? null, oidc: update.oidc ?? null };
    return json(res, 200, { ok: true });
  }
  if (action === ".well-known/openid-configuration") {
    state.metadataFetches++;
    return state.metadata.oidc ? json(res, 200, state.metadata.oidc) : json(res, 404, { error: "not found" });
  }
  if (action === "introspection/_set" && req.method === "POST") {
    state.introspection.answers = JSON.parse((await readBody(req)).toString()) as IntrospectionBehaviour["answers"];
    return json(res, 200, { ok: true });
  }
  // Token checks: RFC 7662 (POST form `token`), Google/Amazon (GET `?access_token=`), GitHub
  // (POST JSON `access_token` to /applications/{client_id}/token). Answered per token, recorded without it.
  if (action === "introspect" || /^applications\/[^/]+\/token$/.test(action)) {
    const raw = (await readBody(req)).toString();
    const query = new URL(req.url ?? "/", "http://x").searchParams;
    const form = Object.fromEntries(new URLSearchParams(raw));
    let json: Record<string, string> = {};
    try {
      json = raw.startsWith("{") ? (JSON.parse(raw) as Record<string, string>) : {};
    } catch {
      json = {};
    }
    const token = query.get("access_token") ?? form.token ?? json.access_token ?? "";
    const { token: _t, ...rest } = form;
    state.introspection.calls.push({
      method: req.method ?? "",
      path: action,
      authorization: req.headers.authorization ?? null,
      accept: String(req.headers.accept ?? ""),
      apiVersion: String(req.headers["x-github-api-version"] ?? ""),
      form: { ...rest, token: form.token ? "(present)" : "" },
      tokenIn: query.has("access_token") ? "query" : json.access_token ? "json" : form.token ? "form" : "none",
    });
    const answer = state.introspection.answers[token] ?? state.introspection.answers.default ?? { status: 200, body: '{"active":false}' };
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    return res.end(answer.body);
  }
  if (action === "_stats") {
    return json(res, 200, {
      jwksFetches: state.jwksFetches,
      metadataFetches: state.metadataFetches,
      introspectionCalls: state.introspection.calls,
      uploadFirstChunk: state.uploadFirstChunk,
      originRequests: state.originRequests,
    });
  }
  if (action === "jwks") {
    state.jwksFetches++;
    const { status, body, headers, delayMs } = state.jwks;
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    res.writeHead(status, headers);
    return res.end(body);
  }
  json(res, 404, { error: "no such fixture" });
}

/**
 * Streaming probes. `/__download?bytes=N&pause=MS`: the first 64 KiB at once, then the rest after a pause,
 * so a client that sees the first chunk early proves nothing in between buffered. `/__upload`: records when
 * the first chunk of the body arrived (`_stats` uploadFirstChunk), so a test can hold back the rest of its
 * body until the origin has seen the start.
 */
async function streamingHandler(req: IncomingMessage, res: ServerResponse, state: Namespace, url: URL): Promise<boolean> {
  if (url.pathname.endsWith("/__download")) {
    const total = Number(url.searchParams.get("bytes") ?? 1_048_576);
    const pause = Number(url.searchParams.get("pause") ?? 0);
    res.writeHead(200, { "content-type": "application/octet-stream", "x-origin-header": "kept" });
    const first = Math.min(65_536, total);
    res.write(Buffer.alloc(first, 1));
    await new Promise((resolve) => setTimeout(resolve, pause));
    for (let sent = first; sent < total; sent += 1_048_576) res.write(Buffer.alloc(Math.min(1_048_576, total - sent), 2));
    res.end();
    return true;
  }
  if (url.pathname.endsWith("/__upload")) {
    let bytes = 0;
    for await (const chunk of req) {
      if (bytes === 0) state.uploadFirstChunk = true;
      bytes += (chunk as Buffer).length;
    }
    json(res, 200, { bodyBytes: bytes });
    return true;
  }
  return false;
}

/** The test namespace: `x-test-ns`, or the `ns=` tag test/helpers.ts also puts in User-Agent (preflights keep only that). */
function namespaceOf(req: IncomingMessage): string {
  const header = req.headers["x-test-ns"];
  if (header !== undefined) return String(header);
  return /^portcullis-test ns=([\w-]+) /.exec(req.headers["user-agent"] ?? "")?.[1] ?? "";
}

async function originHandler(req: IncomingMessage, res: ServerResponse) {
  const ns = namespaceOf(req);
  const state = space(ns);
  const url = new URL(req.url ?? "/", "http://origin");
  if (url.pathname.endsWith("/__status")) {
    // The origin's own answers (its 401s included) must pass through the gate untouched.
    state.originRequests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, bodyBytes: 0 });
    res.writeHead(Number(url.searchParams.get("code") ?? 401), { "www-authenticate": 'Bearer realm="origin"', "x-origin-header": "kept" });
    return res.end("origin says no");
  }
  if (url.pathname.endsWith("/__cors")) {
    // An origin that owns its CORS policy (credentialed, for one origin): the gate must pass it through as is.
    state.originRequests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, bodyBytes: 0 });
    res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "https://app.example", "access-control-allow-credentials": "true", vary: "Origin" });
    return res.end(JSON.stringify({ origin: "cors" }));
  }
  if (await streamingHandler(req, res, state, url)) return;
  const body = await readBody(req);
  const record: OriginRecord = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, bodyBytes: body.length, ...(body.length ? { bodyBase64: body.toString("base64") } : {}) };
  state.originRequests.push(record);
  if (state.originDelayMs) await new Promise((resolve) => setTimeout(resolve, state.originDelayMs));
  json(res, 200, { origin: "echo", ...record });
}

const guard =
  (handler: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>) => (req: IncomingMessage, res: ServerResponse) =>
    handler(req, res).catch(() => json(res, 500, { error: "fixture failure" }));

export async function listen(handler: "issuer" | "origin"): Promise<{ server: Server; url: string }> {
  const server = createServer(guard(handler === "issuer" ? issuerHandler : originHandler));
  if (handler === "origin") {
    // WebSocket echo, to prove upgrades pass through the gate after authorization.
    const sockets = new WebSocketServer({ noServer: true });
    server.on("upgrade", (req, socket, head) => {
      sockets.handleUpgrade(req, socket, head, (client) => {
        const sub = String(req.headers["x-auth-sub"] ?? "");
        client.on("message", (data) => client.send(`echo:${sub}:${String(data)}`));
      });
    });
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  return { server, url: `http://127.0.0.1:${address.port}` };
}

/** A port that was just free: connecting to it fails fast (origin down). */
export async function closedPortUrl(): Promise<string> {
  const { server, url } = await listen("origin");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return url;
}
