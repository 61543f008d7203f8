// DEMO ONLY. A throwaway authorization server for `npm start`: a fresh ES256 key per run, its public JWKS,
// and RFC 9068 access tokens for the [env.demo] Worker. It has no client authentication at all, so it
// listens on loopback only and must never be deployed or exposed. Never imported by src/.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { SignJWT, exportJWK, generateKeyPair } from "jose";

export const ISSUER = "http://127.0.0.1:8790";
export const AUDIENCE = "http://127.0.0.1:8787";
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

/** Creates the key pair and the HTTP server (not yet listening). */
export async function createIssuer() {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const kid = `demo-${randomUUID().slice(0, 8)}`;
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] };

  /** Issued `ageSeconds` ago, valid for `ttl` seconds: `ageSeconds > ttl` makes an already expired token. */
  async function mint({ scope, ttl = 3600, ageSeconds = 0, sub = "alice", name = "Alice Example", clientId = "demo-client" }) {
    const iat = Math.floor(Date.now() / 1000) - ageSeconds;
    return new SignJWT({ client_id: clientId, scope, name })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .setJti(randomUUID())
      .sign(privateKey);
  }

  const server = createServer(async (req, res) => {
    const json = (status, body) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body, null, 2) + "\n");
    };
    try {
      const { pathname } = new URL(req.url ?? "/", ISSUER);
      if (req.method === "GET" && pathname === "/jwks.json") return json(200, jwks);
      if (req.method === "POST" && pathname === "/token") {
        // client_credentials style, no client authentication: demo only.
        const form = new URLSearchParams(await readBody(req, 4096));
        const grant = form.get("grant_type") ?? "client_credentials";
        if (grant !== "client_credentials") return json(400, { error: "unsupported_grant_type" });
        const scope = form.get("scope") ?? "notes:read";
        if (!SCOPE_TOKEN.test(scope)) return json(400, { error: "invalid_scope" });
        const token = await mint({ scope, clientId: form.get("client_id") ?? "demo-client" });
        return json(200, { access_token: token, token_type: "Bearer", expires_in: 3600, scope });
      }
      json(404, { error: "not_found", endpoints: ["GET /jwks.json", "POST /token (form: scope)"] });
    } catch {
      json(400, { error: "invalid_request" });
    }
  });
  return { server, mint, jwks };
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      body += chunk;
      if (body.length > limit) reject(new Error("body too large"));
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}
