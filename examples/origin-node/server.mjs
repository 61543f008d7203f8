// An origin that trusts only requests carrying a valid Portcullis assertion for that exact request.
//
//   node examples/origin-node/server.mjs
//
// Environment: PORT (default 8792), ASSERTION_ISSUER, ASSERTION_AUDIENCE, and the gate's public keys as
// PORTCULLIS_KEYS_URL (its `forward.assertion.jwks_path`, for example
// https://api.example.com/.well-known/portcullis-keys.json) or PORTCULLIS_KEYS (the JWKS JSON inline).
// Needs Node 22.18+ (it imports the verifier's TypeScript source directly).
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { createLocalJWKSet, createRemoteJWKSet } from "jose";
import { AssertionError, memoryReplayStore, verifyAssertion } from "../../src/origin/verify-assertion.ts";

/** Starts the example origin; resolves once it listens. */
export async function startExampleOrigin({ port = 0, host = "127.0.0.1", issuer, audience, keys, headerPrefix = "x-auth-" }) {
  const replay = memoryReplayStore();
  const server = createServer(async (req, res) => {
    const request = {
      method: req.method ?? "GET",
      url: `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`,
      headers: new Headers(Object.entries(req.headers).flatMap(([name, value]) => (Array.isArray(value) ? value.map((v) => [name, v]) : value === undefined ? [] : [[name, value]]))),
    };
    try {
      // `target`: the raw request target, before any URL parsing resolves `..`, `%2e` or `\` in it.
      const identity = await verifyAssertion(request, { issuer, audience, keys, headerPrefix, replay, target: req.url ?? "" });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, path: req.url, sub: identity.sub ?? null, client_id: identity.client_id ?? null, scopes: identity.scopes }));
    } catch (error) {
      const code = error instanceof AssertionError ? error.code : "error";
      res.writeHead(code === "missing" ? 401 : 403, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: false, error: code }));
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  return { server, url: `http://${host}:${address.port}` };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { PORT = "8792", ASSERTION_ISSUER, ASSERTION_AUDIENCE, PORTCULLIS_KEYS_URL, PORTCULLIS_KEYS } = process.env;
  if (!ASSERTION_ISSUER || !ASSERTION_AUDIENCE || !(PORTCULLIS_KEYS_URL || PORTCULLIS_KEYS)) {
    console.error("set ASSERTION_ISSUER, ASSERTION_AUDIENCE and PORTCULLIS_KEYS_URL (or PORTCULLIS_KEYS)");
    process.exit(2);
  }
  const keys = PORTCULLIS_KEYS_URL ? createRemoteJWKSet(new URL(PORTCULLIS_KEYS_URL)) : createLocalJWKSet(JSON.parse(PORTCULLIS_KEYS));
  const { url } = await startExampleOrigin({ port: Number(PORT), issuer: ASSERTION_ISSUER, audience: ASSERTION_AUDIENCE, keys });
  console.log(`example origin listening on ${url}: only requests with a valid Portcullis assertion get 200`);
}
