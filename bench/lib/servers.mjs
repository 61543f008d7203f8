// The loopback servers in the bench process: the issuer (serving the JWKS) and the origin every Worker
// forwards to.
import { createServer } from "node:http";
import { onCleanup } from "./cleanup.mjs";

/** The issuer and the origin, both stopped by the bench's cleanup. */
export async function startServers(jwks) {
  const issuer = await startIssuer(jwks);
  const origin = await startOrigin();
  onCleanup(() => closeServer(issuer.server));
  onCleanup(() => closeServer(origin.server));
  return { issuer, origin };
}

/** The issuer: serves the JWKS (max-age 3600) and counts fetches by the `w` query parameter. */
async function startIssuer(jwks) {
  const body = JSON.stringify(jwks);
  const fetches = {};
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname !== "/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    const who = url.searchParams.get("w") ?? "?";
    fetches[who] = (fetches[who] ?? 0) + 1;
    res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=3600", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  const port = await listen(server);
  const url = `http://127.0.0.1:${port}`;
  // Each Worker gets its own jwks_uri, so that the counter tells who fetched.
  return { server, url, fetches, jwksUri: (who) => `${url}/jwks.json?w=${who}` };
}

/** The origin: a small JSON answer; keeps the last request's headers for the functional checks. */
async function startOrigin() {
  const state = { requests: 0, last: undefined };
  const body = '{"ok":true}';
  const server = createServer((req, res) => {
    state.requests++;
    state.last = req.headers;
    req.resume();
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  const port = await listen(server);
  return { server, url: `http://127.0.0.1:${port}`, state };
}

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
}

function closeServer(server) {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function freePort() {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}
