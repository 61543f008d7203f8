// Row 4 of `npm run bench`: Hono's own `jwk` middleware (hono/jwk), configured the way its documentation
// shows, for the same issuer, audience, algorithms and tokens as Portcullis, plus the one scope check a user
// would add by hand; then forwarded like the baseline.
//
// KEYS_MODE = "jwks_uri" (row 4, the documented configuration): `jwks_uri` is fetched by hono on every
//   request (hono 4.13 keeps no cache) and the key is imported on every request.
// KEYS_MODE = "cached"   (row 4b): `keys` as a function that fetches the same JWKS once per isolate and
//   keeps the settled key list in module scope (what a user who reads hono's source would write). The key is
//   still imported by hono on every request.
// VERIFY = "full" (default): verification { iss, aud, typ: "at+jwt" }. "typ_only" / "none" exist only for
//   the functional probes in lib/checks.mjs that document hono's defaults; they are never benchmarked.
import { Hono } from "hono";
import { jwk } from "hono/jwk";

let middleware;
let cachedKeys;

function verification(env) {
  if (env.VERIFY === "none") return undefined;
  if (env.VERIFY === "typ_only") return { typ: "at+jwt" };
  return { iss: env.ISSUER, aud: env.AUDIENCE, typ: "at+jwt" };
}

function create(env) {
  const options = { alg: ["RS256", "ES256", "EdDSA"], verification: verification(env) };
  if (env.KEYS_MODE === "cached") {
    options.keys = async () => {
      // Only the settled array is shared between requests (workerd forbids awaiting another request's I/O).
      if (!cachedKeys) {
        const response = await fetch(env.JWKS_URI);
        cachedKeys = (await response.json()).keys;
      }
      return cachedKeys;
    };
  } else {
    options.jwks_uri = env.JWKS_URI;
  }
  return jwk(options);
}

const app = new Hono();
app.use("/v1/*", (c, next) => (middleware ??= create(c.env))(c, next));
app.use("/v1/*", async (c, next) => {
  const scope = c.get("jwtPayload")?.scope;
  if (typeof scope !== "string" || !scope.split(" ").includes(c.env.SCOPE)) {
    return c.json({ error: "insufficient_scope" }, 403);
  }
  await next();
});
app.all("*", (c) => {
  const url = new URL(c.req.url);
  return fetch(new Request(c.env.ORIGIN_URL + url.pathname + url.search, c.req.raw));
});

export default app;
