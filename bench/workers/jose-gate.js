// The minimal jose gate of issue 17's table: what a Workers user would write by hand with jose and a local
// key set. `jwtVerify` (signature, iss, aud, exp/nbf, typ) against `createLocalJWKSet` built once per isolate
// from the JWKS binding, one scope check, one identity header, then forwarded like the baseline. No path,
// header, token-format or method checks, no log line, no origin timeout.
import { createLocalJWKSet, jwtVerify } from "jose";

let keySet;

export default {
  async fetch(request, env) {
    keySet ??= createLocalJWKSet(env.JWKS);
    const authorization = request.headers.get("authorization") ?? "";
    if (!authorization.startsWith("Bearer ")) return new Response(null, { status: 401 });
    let payload;
    try {
      ({ payload } = await jwtVerify(authorization.slice(7), keySet, { issuer: env.ISSUER, audience: env.AUDIENCE, typ: "at+jwt", algorithms: ["RS256", "ES256", "EdDSA"] }));
    } catch {
      return new Response(null, { status: 401 });
    }
    if (typeof payload.scope !== "string" || !payload.scope.split(" ").includes(env.SCOPE)) return new Response(null, { status: 403 });
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    headers.set("x-auth-sub", String(payload.sub));
    return fetch(new Request(env.ORIGIN_URL + url.pathname + url.search, { method: request.method, headers, body: request.body }));
  },
};
