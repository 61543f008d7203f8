import { base64url, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALGORITHMS,
  clientCredentials,
  FOREIGN_RESOURCE,
  resourceFor,
  revoke,
  rotate,
  SHORT_LIVED_TTL,
  startAuthorizationServer,
  type AuthorizationServer,
} from "./authorization-server";
import { startOrigin, type Origin, type OriginRequest } from "./origin";
import { startPortcullis, type LogLine, type Portcullis } from "./portcullis";

/**
 * End to end: a real authorization server (oidc-provider, e2e/authorization-server.ts), Portcullis under
 * `wrangler dev` (workerd, e2e/portcullis.ts) and a recording origin (e2e/origin.ts), all on loopback,
 * started and stopped here. Tests run in order and share these processes; the key rotation is last.
 */

const INTROSPECTION_SECRET = "E2E_INTROSPECTION_SECRET";

let as: AuthorizationServer;
let origin: Origin;
let gate: Portcullis;

function portcullisConfig(issuer: string) {
  return {
    realm: "portcullis-e2e",
    issuers: [
      {
        issuer,
        audiences: ALGORITHMS.map(resourceFor),
        // jwks_uri omitted on purpose: discovered from the issuer's metadata.
        algorithms: [...ALGORITHMS],
        // Exact expiry, so a 2-second token is refused 2 seconds later (the default tolerance is 30 s).
        clock_tolerance: 0,
        jwks: { refetch_cooldown: 1 },
        // cache_ttl 0: every opaque token is introspected on every request, so a revocation is immediate.
        introspection: { client_id: "gate", client_secret: INTROSPECTION_SECRET, cache_ttl: 0 },
        // DPoP-bound tokens accepted beside bearer tokens (test 8).
        dpop: { mode: "allowed", algorithms: ["ES256", "EdDSA"] },
      },
    ],
    routes: [
      { path: "/public/**", access: "public" },
      { path: "/items/**", methods: ["GET"], scopes: ["items:read"] },
      { path: "/items/**", methods: ["POST", "PUT", "DELETE"], scopes: ["items:write"] },
    ],
  };
}

beforeAll(async () => {
  as = await startAuthorizationServer();
  origin = await startOrigin();
  gate = await startPortcullis({
    vars: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: portcullisConfig(as.issuer) },
    secrets: { [INTROSPECTION_SECRET]: as.state.clients.gate.secret },
  });
});

afterAll(async () => {
  // PORTCULLIS_E2E_LOGS=1 prints everything wrangler dev printed (the Worker's JSON log lines included).
  if (process.env.PORTCULLIS_E2E_LOGS && gate) console.log(`${gate.output.join("\n")}\nAS (last instance) saw:\n${as?.requests.join("\n")}`);
  await gate?.stop();
  await origin?.close();
  await as?.close();
});

let counter = 0;
/** A path no other request uses, so what the origin saw and what the gate logged can be found by it. */
const uniquePath = (prefix: string, label: string) => `${prefix}/${label}-${++counter}`;

interface Result {
  status: number;
  wwwAuthenticate: string | null;
  body: unknown;
  /** What the origin received for this exact path (nothing for a refused request). */
  seen: OriginRequest[];
  /** The gate's decision log line for this request. */
  decision: LogLine;
}

async function send(path: string, init: { token?: string; method?: string; headers?: Record<string, string> } = {}): Promise<Result> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const response = await fetch(gate.url + path, { method: init.method ?? "GET", headers, signal: AbortSignal.timeout(15_000) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Kept as text.
  }
  const decision = await gate.waitForLog((line) => line.event === "decision" && line.path === path);
  return { status: response.status, wwwAuthenticate: response.headers.get("www-authenticate"), body, seen: origin.seen(path), decision };
}

/** Every header of the identity namespace the origin received, names normalized the way the gate compares them. */
function identityHeaders(request: OriginRequest): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    const normalized = name.toLowerCase().replaceAll("_", "-");
    if (normalized.startsWith("x-auth-")) found[name] = value;
  }
  return found;
}

const jwt = async (alg: (typeof ALGORITHMS)[number], scope = "items:read") =>
  (await clientCredentials(as, { scope, resource: resourceFor(alg) })).access_token;

describe("Portcullis end to end (oidc-provider, wrangler dev, loopback origin)", () => {
  it("0. the AS issues RFC 9068 JWT access tokens (typ at+jwt) with the expected header and claims", async () => {
    const issued = await clientCredentials(as, { scope: "items:read", resource: resourceFor("PS256") });
    expect(issued).toMatchObject({ token_type: "Bearer", expires_in: 600, scope: "items:read" });
    const header = decodeProtectedHeader(issued.access_token);
    const claims = decodeJwt(issued.access_token);
    expect(header).toEqual({ alg: "PS256", typ: "at+jwt", kid: as.kids.rsa });
    expect(claims).toEqual({
      jti: expect.any(String),
      sub: "api-client",
      iat: expect.any(Number),
      exp: claims.iat! + 600,
      scope: "items:read",
      client_id: "api-client",
      iss: as.issuer,
      aud: resourceFor("PS256"),
    });
    console.log(`decoded PS256 access token:\nheader ${JSON.stringify(header)}\nclaims ${JSON.stringify(claims)}`);
  });

  describe("1. a client_credentials JWT with the needed scope passes, for each algorithm", () => {
    it.each(ALGORITHMS)("%s -> 200, the origin sees exactly the verified identity", async (alg) => {
      const token = await jwt(alg);
      const header = decodeProtectedHeader(token);
      expect(header.alg).toBe(alg);
      expect(header.typ).toBe("at+jwt");
      const path = uniquePath("/items", alg);
      const result = await send(path, { token });
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.decision).toMatchObject({ outcome: "allow", issuer: as.issuer, kid: header.kid });
      expect(result.seen).toHaveLength(1);
      const [seen] = result.seen;
      expect(seen!.method).toBe("GET");
      expect(identityHeaders(seen!)).toEqual({
        // oidc-provider sets sub = client_id on client_credentials JWTs.
        "x-auth-sub": "api-client",
        "x-auth-client-id": "api-client",
        "x-auth-scope": "items:read",
        "x-auth-issuer": as.issuer,
      });
      expect(seen!.headers.authorization).toBeUndefined();
    });
  });

  it("1b. the keys came through discovery: metadata at the RFC 8414 location, then the JWKS, once each", async () => {
    // The config has no jwks_uri. oidc-provider serves both /.well-known/oauth-authorization-server (tried
    // first) and /.well-known/openid-configuration (the fallback, only used after a 404).
    expect(as.requests.filter((line) => line.startsWith("GET /.well-known/"))).toEqual(["GET /.well-known/oauth-authorization-server"]);
    expect(as.requests.filter((line) => line === "GET /jwks")).toHaveLength(1);
    await gate.waitForLog((line) => line.event === "jwks_discovered" && line.issuer === as.issuer);
    // The first load of a key set is logged as `initial` (issue 14: it used to say `expired`).
    expect(gate.logs.filter((line) => line.event === "jwks_fetch")).toEqual([expect.objectContaining({ reason: "initial", keys: 5 })]);
  });

  it("2. a token without the needed scope -> 403 insufficient_scope naming the scope", async () => {
    const path = uniquePath("/items", "write");
    const result = await send(path, { token: await jwt("ES256", "items:read"), method: "POST" });
    expect(result.status).toBe(403);
    expect(result.wwwAuthenticate).toMatch(/^Bearer /);
    expect(result.wwwAuthenticate).toContain('error="insufficient_scope"');
    expect(result.wwwAuthenticate).toContain('scope="items:write"');
    expect(result.body).toMatchObject({ error: "insufficient_scope" });
    expect(result.decision).toMatchObject({ outcome: "deny", status: 403, reason: "scope_missing" });
    expect(result.seen).toHaveLength(0);
  });

  it("3. an expired token -> 401 invalid_token (2-second token, used once, then waited out)", async () => {
    const issued = await clientCredentials(as, { scope: "items:read short-lived", resource: resourceFor("ES256") });
    expect(issued.expires_in).toBe(SHORT_LIVED_TTL);
    const { exp } = decodeJwt(issued.access_token);

    const fresh = await send(uniquePath("/items", "short-lived"), { token: issued.access_token });
    expect(fresh.status).toBe(200);

    // clock_tolerance is 0: expired once now >= exp. Wait until a moment past that.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp! * 1000 + 300 - Date.now())));
    const path = uniquePath("/items", "expired");
    const result = await send(path, { token: issued.access_token });
    expect(result.status).toBe(401);
    expect(result.wwwAuthenticate).toContain('error="invalid_token"');
    expect(result.decision).toMatchObject({ status: 401, reason: "token_expired" });
    expect(result.seen).toHaveLength(0);
  });

  it("4. a token for another resource (audience not accepted) -> 401 invalid_token", async () => {
    const { access_token: token } = await clientCredentials(as, { scope: "items:read", resource: FOREIGN_RESOURCE });
    expect(decodeJwt(token).aud).toBe(FOREIGN_RESOURCE);
    const path = uniquePath("/items", "foreign");
    const result = await send(path, { token });
    expect(result.status).toBe(401);
    expect(result.wwwAuthenticate).toContain('error="invalid_token"');
    expect(result.decision).toMatchObject({ status: 401, reason: "audience_mismatch" });
    expect(result.seen).toHaveLength(0);
  });

  it("6. an opaque token passes through introspection; once revoked (RFC 7009) -> 401", async () => {
    const { access_token: token } = await clientCredentials(as, { scope: "items:read" });
    expect(token.split(".")).toHaveLength(1); // opaque, not a JWT

    const first = await send(uniquePath("/items", "opaque"), { token });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.decision).toMatchObject({ outcome: "allow", issuer: as.issuer });
    // Introspection of a client_credentials token has no `sub` (oidc-provider sets it only for end users).
    expect(identityHeaders(first.seen[0]!)).toEqual({
      "x-auth-client-id": "api-client",
      "x-auth-scope": "items:read",
      "x-auth-issuer": as.issuer,
    });

    // The introspection endpoint came from the same metadata; the gate authenticated as "gate".
    expect(as.requests.filter((line) => line === "POST /token/introspection")).toHaveLength(1);

    await revoke(as, token);
    // introspection.cache_ttl = 0 in this configuration: the very next request asks the AS again.
    const path = uniquePath("/items", "revoked");
    const result = await send(path, { token });
    expect(result.status).toBe(401);
    expect(result.wwwAuthenticate).toContain('error="invalid_token"');
    expect(result.decision).toMatchObject({ status: 401, reason: "token_inactive" });
    expect(result.seen).toHaveLength(0);
  });

  it("7. client-forged identity headers never reach the origin; it sees exactly the verified x-auth-* headers", async () => {
    const forged = {
      "X-Auth-Sub": "admin",
      x_auth_scope: "items:read items:write admin",
      "X-Auth_Client-Id": "evil-client",
      "X-AUTH-ISSUER": "https://evil.example",
      "x-auth-email": "root@example.com",
      // Control: an unrelated header with underscores does arrive, so the forged ones above are not
      // merely dropped by the runtime in transit.
      X_Probe_Header: "kept",
    };
    const path = uniquePath("/items", "forged");
    const result = await send(path, { token: await jwt("EdDSA"), headers: forged });
    expect(result.status).toBe(200);
    const [seen] = result.seen;
    expect(identityHeaders(seen!)).toEqual({
      "x-auth-sub": "api-client",
      "x-auth-client-id": "api-client",
      "x-auth-scope": "items:read",
      "x-auth-issuer": as.issuer,
    });
    const probe = Object.entries(seen!.headers).find(([name]) => name.toLowerCase() === "x_probe_header");
    expect(probe?.[1]).toBe("kept");

    // Without a token, on a public route: no identity header at all.
    const publicPath = uniquePath("/public", "forged");
    const anonymous = await send(publicPath, { headers: forged });
    expect(anonymous.status).toBe(200);
    expect(identityHeaders(anonymous.seen[0]!)).toEqual({});
  });

  it("8. DPoP: oidc-provider binds the token to the client's key; a fresh proof passes, a replayed proof and the token as Bearer are refused", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwk = await exportJWK(publicKey);
    const proofFor = async (htm: string, htu: string, token?: string) => {
      const ath = token && base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token))));
      return new SignJWT({ htm, htu, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ...(ath ? { ath } : {}) })
        .setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk })
        .sign(privateKey);
    };
    const issued = await clientCredentials(as, { scope: "items:read", resource: resourceFor("ES256"), dpop: await proofFor("POST", as.tokenEndpoint) });
    expect(issued.token_type).toBe("DPoP");
    const jkt = await calculateJwkThumbprint(jwk);
    expect(decodeJwt(issued.access_token).cnf).toEqual({ jkt });
    const token = issued.access_token;

    const path = uniquePath("/items", "dpop");
    const proof = await proofFor("GET", `${gate.url}${path}`, token);
    const accepted = await send(path, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
    expect(accepted.seen).toHaveLength(1);
    expect(identityHeaders(accepted.seen[0]!)).toMatchObject({ "x-auth-cnf-method": "dpop", "x-auth-cnf-jkt": jkt });

    // The same proof again, through the replay store (a Durable Object under wrangler dev).
    const replayed = await fetch(`${gate.url}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof }, signal: AbortSignal.timeout(15_000) });
    expect(replayed.status).toBe(401);
    expect(replayed.headers.get("www-authenticate")).toContain('DPoP realm="portcullis-e2e", algs="ES256 EdDSA", error="invalid_dpop_proof"');
    await replayed.arrayBuffer();
    await gate.waitForLog((line) => line.event === "decision" && line.path === path && line.reason === "dpop_proof_replayed");
    expect(origin.seen(path)).toHaveLength(1);

    const asBearer = await send(uniquePath("/items", "dpop-as-bearer"), { token });
    expect(asBearer.status).toBe(401);
    expect(asBearer.decision).toMatchObject({ status: 401, reason: "dpop_bound_token_as_bearer" });
    expect(asBearer.seen).toHaveLength(0);

    const secondPath = uniquePath("/items", "dpop-fresh");
    const fresh = await send(secondPath, { headers: { authorization: `DPoP ${token}`, dpop: await proofFor("GET", `${gate.url}${secondPath}`, token) } });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(200);
  });

  it("5. key rotation at the AS (restart on the same port, new kids): new tokens pass, retired-key tokens are refused", async () => {
    const before = { rsa: await jwt("RS256"), ec: await jwt("ES384") };
    expect((await send(uniquePath("/items", "pre-rotation"), { token: before.rsa })).status).toBe(200);
    const oldKids = { ...as.kids };

    as = await rotate(as);
    expect(as.kids.rsa).not.toBe(oldKids.rsa);

    // Until something makes it fetch, Portcullis serves its cached set (README "Key sets": a removed key
    // lives until the cached set expires), so a token signed with the old key still passes here.
    expect((await send(uniquePath("/items", "old-kid-cached"), { token: before.ec })).status).toBe(200);

    // An unknown kid refetches at most once per refetch_cooldown (1 s here) after the last fetch.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const after = await jwt("RS256");
    expect(decodeProtectedHeader(after).kid).toBe(as.kids.rsa);
    const fresh = await send(uniquePath("/items", "post-rotation"), { token: after });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(200);
    await gate.waitForLog((line) => line.event === "jwks_fetch" && line.reason === "unknown_kid");
    // The discovered jwks_uri is still cached: the restarted AS was asked for its keys only.
    expect(as.requests.filter((line) => line.startsWith("GET /"))).toEqual(["GET /jwks"]);

    // The refetched set replaced the old one: tokens signed with the retired keys are refused.
    for (const [label, token] of Object.entries(before)) {
      const path = uniquePath("/items", `retired-${label}`);
      const result = await send(path, { token });
      expect(result.status, label).toBe(401);
      expect(result.wwwAuthenticate).toContain('error="invalid_token"');
      expect(result.decision).toMatchObject({ status: 401, reason: "kid_unknown" });
      expect(result.seen).toHaveLength(0);
    }

    // Every ES*/EdDSA/PS* key was rotated too.
    for (const alg of ["PS512", "ES512", "EdDSA"] as const) {
      expect((await send(uniquePath("/items", `post-rotation-${alg}`), { token: await jwt(alg) })).status, alg).toBe(200);
    }
  });
});
