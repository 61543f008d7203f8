import * as v from "valibot";
import { isAllowedUrl } from "../lib/url";
import { CLAIM_PATH } from "../lib/claim-path";

/**
 * The configuration schema: the public interface of Portcullis. The same object is read from
 * `wrangler.toml` `[vars.PORTCULLIS_CONFIG]` and passed to `portcullis(config)` by library users.
 * Every field is documented in the README's configuration reference; keep the two in step.
 */

/** Signature algorithms Portcullis can verify. HS* additionally need `hmac_secret`. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
export type Algorithm = (typeof ASYMMETRIC_ALGORITHMS)[number] | (typeof HMAC_ALGORITHMS)[number];

/** Printable ASCII without `"` and `\`: safe inside an RFC 7235 quoted-string and a log line. */
const printable = v.regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/, "must be printable ASCII without quotes or backslashes");
/** RFC 6749 section 3.3 scope-token. */
const scopeToken = v.pipe(v.string(), v.regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "must be an RFC 6749 scope token"));
const httpUrl = v.pipe(
  v.string(),
  v.url("must be an absolute URL"),
  v.check(isAllowedUrl, "must use https (http is allowed only for loopback hosts)"),
);
const bounded = (min: number, max: number, fallback: number) =>
  v.optional(v.pipe(v.number(), v.integer("must be a whole number"), v.minValue(min), v.maxValue(max)), fallback);
const headerName = v.pipe(v.string(), v.regex(/^[a-z0-9-]+$/, "must be a lower-case header name (a-z, 0-9, -)"));

const claimPath = v.pipe(
  v.string(),
  v.regex(CLAIM_PATH, "must be a dotted claim path (a name with other characters in brackets: [https://acme.example/roles])"),
);
const claimValue = v.union([v.string(), v.number(), v.boolean()], "must be a string, number or boolean");

/** A condition on a verified claim; exactly one operator. */
const ClaimConditionSchema = v.strictObject({
  claim: claimPath,
  /** The claim equals this value. */
  equals: v.optional(claimValue),
  /** The claim equals one of these values. */
  one_of: v.optional(v.pipe(v.array(claimValue), v.minLength(1))),
  /** The claim is an array containing this value, or a space-delimited string containing it as a whole word. */
  contains: v.optional(claimValue),
});

const ScopeSourceSchema = v.strictObject({
  /** Dotted claim path holding a space-delimited string or an array of strings. */
  claim: claimPath,
  /** Prepended to every value from this claim (e.g. "role:" for realm_access.roles). */
  prefix: v.optional(v.pipe(v.string(), v.regex(/^[\x21\x23-\x5b\x5d-\x7e]*$/, "must be scope-token characters")), ""),
});

const bindingName = v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a binding name"));
/** Milliseconds an issuer's endpoint (JWKS, metadata, introspection) may take to answer. */
const upstreamTimeoutMs = bounded(100, 30_000, 5_000);

/** A tenant id in an Entra-style `{tenantid}` issuer: a lower-case GUID. */
export const TENANT_ID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/** RFC 7662 token introspection for this issuer (README "Introspection"). */
export const INTROSPECTION_FLAVORS = ["rfc7662", "google", "github", "amazon"] as const;

const IntrospectionSchema = v.strictObject({
  /**
   * How the token check is asked and answered: RFC 7662 (default) or a provider's own token-check endpoint
   * (README "Provider tokens").
   */
  flavor: v.optional(v.picklist(INTROSPECTION_FLAVORS, "must be rfc7662, google, github or amazon"), "rfc7662"),
  /** The endpoint; for rfc7662, when absent, `introspection_endpoint` from the issuer's metadata. `{client_id}` is replaced. */
  endpoint: v.optional(v.pipe(v.string(), v.check((url) => isAllowedUrl(url.replace("{client_id}", "x")), "must be an https URL (http only for loopback hosts)"))),
  /** Portcullis's own client at the authorization server (rfc7662, github). */
  client_id: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"), v.regex(/^[\x21-\x7e]+$/, "must be printable ASCII"))),
  /** Name of the `wrangler secret` holding the client secret (rfc7662, github). */
  client_secret: v.optional(bindingName),
  auth_method: v.optional(v.picklist(["client_secret_basic", "client_secret_post"], "must be client_secret_basic or client_secret_post"), "client_secret_basic"),
  timeout_ms: upstreamTimeoutMs,
  max_bytes: bounded(1_024, 1_048_576, 65_536),
  /** Longest time an active result is reused (never past the token's `exp`). 0 = no cache. */
  cache_ttl: bounded(0, 3_600, 60),
  /** How long an inactive result is remembered (a client retrying a dead token costs one call per this). 0 = not cached. */
  inactive_cache_ttl: bounded(0, 300, 5),
  /** Upstream calls per minute per isolate for tokens not seen active before; beyond it a local 503. */
  max_calls_per_minute: bounded(1, 1_000_000, 600),
  /** Refuse provider tokens (GitHub, Google) that do not have the provider's documented format, without a call. */
  check_format: v.optional(v.boolean(), true),
  /** Also cache active results in Workers KV (shared by isolates; entries of at least 60 s only). */
  kv_cache: v.optional(v.boolean(), false),
  /** Tokens that are not JWTs are checked here. Without `token_prefixes`, at most one issuer may take them. */
  opaque_tokens: v.optional(v.boolean(), true),
  /** Only opaque tokens starting with one of these go to this issuer (Google `ya29.`, GitHub `gho_`...). */
  token_prefixes: v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1))),
  /** Also introspect this issuer's JWTs after local validation (a revocation check). */
  jwts: v.optional(v.boolean(), false),
  /** Refuse an active answer without `aud` (when true) instead of accepting it. */
  require_audience: v.optional(v.boolean(), false),
});

/** How keys are fetched, cached and refreshed (README "Key sets"). Times are in seconds unless named _ms. */
const JwksSchema = v.strictObject({
  /** Abort a JWKS or discovery fetch after this many milliseconds. */
  timeout_ms: upstreamTimeoutMs,
  /** Largest JWKS or metadata body accepted, in bytes. */
  max_bytes: bounded(1_024, 1_048_576, 262_144),
  /** Lifetime when the response has no `Cache-Control: max-age`. */
  default_age: bounded(60, 604_800, 600),
  /** Bounds applied to the response's `Cache-Control: max-age`. */
  min_age: bounded(60, 604_800, 300),
  max_age: bounded(60, 604_800, 86_400),
  /** Refresh in the background when a set has less than this left, so requests never wait on the IdP. */
  refresh_ahead: bounded(0, 86_400, 60),
  /** While the IdP fails, keep serving the last good set this long past its expiry. */
  max_stale: bounded(0, 604_800, 86_400),
  /** Minimum time between two fetches by one isolate (unknown `kid`, expiry or failure). */
  refetch_cooldown: bounded(1, 3_600, 30),
  /** After consecutive failures the wait doubles from `refetch_cooldown` up to this. */
  max_backoff: bounded(1, 86_400, 600),
});

/** A static verification key: a public JWK, or a PEM public key or X.509 certificate with its algorithm. */
const StaticKeySchema = v.union(
  [
    v.strictObject({
      /** `-----BEGIN PUBLIC KEY-----` (SPKI) or `-----BEGIN CERTIFICATE-----` (X.509). */
      pem: v.pipe(v.string(), v.regex(/^-----BEGIN (PUBLIC KEY|CERTIFICATE)-----/, "must be a PEM public key or certificate")),
      alg: v.picklist(ASYMMETRIC_ALGORITHMS, "is not a supported algorithm"),
      kid: v.optional(v.string()),
    }),
    v.looseObject({ kty: v.string() }),
  ],
  "must be a JWK or { pem, alg }",
);

export const KEY_MANAGEMENT_ALGORITHMS = ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"] as const;
export const CONTENT_ENCRYPTION_ALGORITHMS = ["A128GCM", "A256GCM"] as const;

/** Nested JWTs: an access token encrypted (JWE) around the signed JWT (README "Encrypted access tokens"). */
const DecryptionSchema = v.strictObject({
  /** Name of the `wrangler secret` with the private decryption JWK (with `alg`), or `{"keys": [...]}`. */
  keys: bindingName,
  key_management: v.optional(v.pipe(v.array(v.picklist(KEY_MANAGEMENT_ALGORITHMS, "is not an allowed key management algorithm")), v.minLength(1)), ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"]),
  content_encryption: v.optional(v.pipe(v.array(v.picklist(CONTENT_ENCRYPTION_ALGORITHMS, "is not an allowed content encryption algorithm")), v.minLength(1)), ["A128GCM", "A256GCM"]),
});

/** DPoP (RFC 9449) per issuer: `disabled` (default), `allowed` (DPoP-bound or bearer tokens) or `required`. */
export const DPOP_MODES = ["disabled", "allowed", "required"] as const;
export type DpopMode = (typeof DPOP_MODES)[number];
const dpopMode = v.picklist(DPOP_MODES, "must be disabled, allowed or required");

/** Sender-constrained tokens by DPoP proofs (README "Sender-constrained tokens"). Times in seconds. */
const DpopSchema = v.strictObject({
  /**
   * `disabled`: the DPoP scheme is refused and so is any token bound to a DPoP key (`cnf.jkt`). `allowed`:
   * DPoP-bound tokens with a valid proof, bearer tokens as Bearer. `required`: DPoP-bound tokens only.
   */
  mode: v.optional(dpopMode, "disabled"),
  /** Proof signature algorithms (asymmetric only: a proof key is the client's public key). */
  algorithms: v.optional(v.pipe(v.array(v.picklist(ASYMMETRIC_ALGORITHMS, "is not a supported asymmetric algorithm")), v.minLength(1)), ["ES256", "EdDSA", "RS256", "PS256"]),
  /** A proof's `iat` may be this far in the past or the future (plus the issuer's `clock_tolerance`). */
  iat_window: bounded(1, 3_600, 300),
  /**
   * A token without `cnf.jkt` presented with the DPoP scheme (and a valid proof): `reject` (default, 401) or
   * `allow` (RFC 9449 section 7.2 lets a resource server accept it).
   */
  unbound_tokens: v.optional(v.picklist(["reject", "allow"], "must be reject or allow"), "reject"),
  /** Server-provided nonces (RFC 9449 section 9): derived from a secret and a time window, no shared state. */
  nonce: v.optional(
    v.strictObject({
      /** Name of the `wrangler secret` the nonces are derived from (at least 32 characters). */
      secret: bindingName,
      /** Seconds one nonce value is issued for; a nonce is accepted from its window and the next. */
      lifetime: bounded(10, 3_600, 300),
    }),
  ),
});

const IssuerSchema = v.strictObject({
  /** The preset this issuer was filled from (README "Presets"); kept for logs and explain. */
  preset: v.optional(v.string()),
  /**
   * Compared exactly (no trailing-slash or case folding) with the token's `iss`. May contain `{tenantid}`
   * (Microsoft Entra): then `tenants` says which tenant GUIDs are accepted and the `tid` claim must match.
   */
  issuer: v.pipe(v.string(), v.minLength(1, "must not be empty"), printable),
  /** With `{tenantid}` in `issuer`: the accepted tenant ids (GUIDs), or `["*"]` for any tenant. */
  tenants: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(new RegExp(`^(\\*|${TENANT_ID})$`), "must be a lower-case tenant GUID or *"))), v.minLength(1))),
  /** The token's `aud` must contain at least one of these (for Google and Amazon: your client ids). */
  audiences: v.optional(v.array(v.pipe(v.string(), v.minLength(1), printable)), []),
  /** Verification keys given inline instead of a JWKS URL. */
  keys: v.optional(v.pipe(v.array(StaticKeySchema), v.minLength(1))),
  /** Decrypt JWE access tokens from this issuer before validating the JWT inside. */
  decryption: v.optional(DecryptionSchema),
  /** The JWK Set URL; when absent it is discovered from RFC 8414 / OpenID Connect metadata of `issuer`. */
  jwks_uri: v.optional(httpUrl),
  /** Service binding to fetch JWKS and metadata through (an IdP Worker on the same account). */
  jwks_service: v.optional(bindingName),
  algorithms: v.optional(
    v.pipe(v.array(v.picklist([...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS], "is not a supported algorithm")), v.minLength(1)),
    ["RS256", "ES256"],
  ),
  /** Accepted JOSE `typ` values, compared case-insensitively with an optional `application/` prefix. */
  types: v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(1), printable)), v.minLength(1)), ["at+jwt"]),
  /** Claims (dotted paths) every token of this issuer must carry, e.g. Entra's `azp`: ID tokens lack them. */
  required_claims: v.optional(v.array(claimPath), []),
  /** Seconds of clock skew tolerated for `exp`, `nbf` and `iat`. */
  clock_tolerance: bounded(0, 300, 30),
  /** Name of a `wrangler secret` holding the HMAC key; required when `algorithms` lists HS*. */
  hmac_secret: v.optional(bindingName),
  jwks: v.optional(JwksSchema, {}),
  /** Where granted scopes come from; values from all sources are merged. */
  scopes_from: v.optional(v.pipe(v.array(ScopeSourceSchema), v.minLength(1)), [{ claim: "scope" }, { claim: "scp" }]),
  /** Authorization failures of this issuer's tokens are logged, not enforced (the token must still be valid). */
  report_only: v.optional(v.boolean(), false),
  introspection: v.optional(IntrospectionSchema),
  /** DPoP-bound tokens (RFC 9449) of this issuer: mode, proof algorithms, `iat` window, nonces. */
  dpop: v.optional(DpopSchema, {}),
  /** Accept certificate-bound tokens (RFC 8705, `cnf["x5t#S256"]`) checked against the mTLS client certificate. */
  mtls_bound_tokens: v.optional(v.boolean(), false),
});

/**
 * One MCP operation a route allows (README "MCP servers"): the JSON-RPC `method`, compared exactly, and for
 * the methods that address a tool, prompt or resource (`MCP_NAMED_METHODS`) optionally the `name`: exact,
 * or with one `*` standing for any run of characters. Its scopes and claim conditions are required on top
 * of the route's.
 */
const McpOperationSchema = v.strictObject({
  method: v.pipe(v.string(), v.regex(/^[\x21-\x7e]+$/, "must be a JSON-RPC method name (printable ASCII, no spaces)")),
  /** The tool or prompt name (`params.name`) or resource URI (`params.uri`); absent: any. */
  name: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1, "must not be empty"),
      // eslint-disable-next-line no-control-regex -- control characters are what it refuses
      v.regex(/^[^\x00-\x1f\x7f]*$/, "must not contain control characters"),
      v.check((name) => name.split("*").length <= 2, "may contain at most one *"),
    ),
  ),
  scopes: v.optional(v.array(scopeToken), []),
  scopes_any: v.optional(v.array(scopeToken), []),
  claims: v.optional(v.array(ClaimConditionSchema), []),
});

/**
 * JSON-RPC methods whose target `Mcp-Name` mirrors (MCP 2026-07-28 streamable HTTP), and the `params` field
 * holding it. A Map: a method such as `constructor` never finds an inherited entry.
 */
export const MCP_NAMED_METHODS: ReadonlyMap<string, "name" | "uri"> = new Map([
  ["tools/call", "name"],
  ["prompts/get", "name"],
  ["resources/read", "uri"],
  ["resources/subscribe", "uri"],
  ["resources/unsubscribe", "uri"],
]);

/** An MCP endpoint on a route: the operations it allows and how they are read (README "MCP servers"). */
const McpSchema = v.strictObject({
  /** Every operation the route allows; any other is refused (403). */
  operations: v.pipe(v.array(McpOperationSchema), v.minLength(1, "must list at least one operation")),
  /**
   * Read the JSON-RPC body (default): the operation is taken from it and `Mcp-Method`/`Mcp-Name` must agree.
   * `false`: the headers alone, only from clients declaring MCP-Protocol-Version 2026-07-28 or later (whose
   * servers must refuse a header/body mismatch themselves).
   */
  read_body: v.optional(v.boolean(), true),
  /** Largest body read, in bytes; a larger one is refused (413). */
  max_body_bytes: bounded(1_024, 16_777_216, 1_048_576),
  /** Allow JSON-RPC responses sent by the client (to a 2025-11-25 server's sampling, elicitation, roots requests). */
  allow_responses: v.optional(v.boolean(), false),
});

export const ACCESS = ["token", "optional", "public", "deny"] as const;

const RouteSchema = v.strictObject({
  /** Shown in logs and `explain`; defaults to `METHODS [host]path`. */
  name: v.optional(v.pipe(v.string(), v.minLength(1), printable)),
  methods: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.regex(/^(\*|[A-Z]+)$/, "must be an upper-case HTTP method or *"))),
      v.minLength(1),
    ),
    ["*"],
  ),
  path: v.pipe(v.string(), v.regex(/^\//, "must start with /")),
  /** Only requests for this host (compared normalized: lower case, no trailing dot, no default port). */
  host: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9.-]+\.?(:[0-9]{1,5})?$/, "must be a host name, optionally with a port"))),
  /**
   * `token` (default): a valid token meeting the requirements below. `optional`: anonymous allowed, a valid
   * token adds identity headers, an invalid one is refused. `public`: no token needed (a presented one is
   * still verified) and no identity headers. `deny`: always refused.
   */
  access: v.optional(v.picklist(ACCESS, "must be token, optional, public or deny"), "token"),
  /** All of these scopes are required. */
  scopes: v.optional(v.array(scopeToken), []),
  /** At least one of these scopes is required. */
  scopes_any: v.optional(v.array(scopeToken), []),
  /** Every condition must hold on the verified claims. */
  claims: v.optional(v.array(ClaimConditionSchema), []),
  /** Decide and log, but forward even when the requirements above are not met (the token must still be valid). */
  report_only: v.optional(v.boolean(), false),
  /** Introspect JWTs on this route too (a live revocation check); every issuer needs `introspection`. */
  introspect: v.optional(v.boolean(), false),
  /** An MCP endpoint: only the operations listed are allowed (README "MCP servers"). */
  mcp: v.optional(McpSchema),
  /** The DPoP mode on this rule, instead of the token issuer's `dpop.mode` (its other DPoP settings apply). */
  dpop: v.optional(dpopMode),
});

const PathsSchema = v.strictObject({
  /** `;` in a path: `reject` (400, default) or `allow` (a literal character, matched and forwarded as is). */
  semicolons: v.optional(v.picklist(["reject", "allow"], "must be reject or allow"), "reject"),
  /** Empty segments (`//`): `reject` (400, default) or `merge` (collapsed, and the merged path is forwarded). */
  empty_segments: v.optional(v.picklist(["reject", "merge"], "must be reject or merge"), "reject"),
  /** Match literal segments case-insensitively (for case-insensitive origins); the path is forwarded as is. */
  case_insensitive: v.optional(v.boolean(), false),
  /**
   * A segment ending in `.`: `reject` (400, default: IIS/Windows and some Java servers strip trailing dots,
   * so `/admin.` would reach `/admin`) or `allow` (an ordinary character, matched and forwarded as is).
   */
  trailing_dots: v.optional(v.picklist(["reject", "allow"], "must be reject or allow"), "reject"),
  /**
   * For origins that route `/admin.json` to `/admin` (Spring MVC suffix pattern matching, Rails formats): a
   * last segment with a `.ext` suffix is matched on its stem unless a rule names the whole segment. The
   * path is forwarded as is.
   */
  suffix_match: v.optional(v.boolean(), false),
});

const MethodsSchema = v.strictObject({
  /**
   * Method overrides: the headers X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override and the query
   * parameters `_method`, `x-http-method-override`, `x-http-method`, `x-method-override` (names decoded,
   * any case). `strip` (default) removes them before forwarding (the rest of the query byte for byte);
   * `reject` refuses the request (400 `method_override`). The method checked is the method forwarded.
   */
  override_headers: v.optional(v.picklist(["strip", "reject"], "must be strip or reject"), "strip"),
  /**
   * CORS preflights (OPTIONS with Origin and Access-Control-Request-Method): `forward` (default) without a
   * token when a rule (not `deny`) exists for the announced method, with no body and only CORS request
   * headers; a rule naming OPTIONS itself still decides. `authorize`: like any OPTIONS request.
   */
  cors_preflight: v.optional(v.picklist(["forward", "authorize"], "must be forward or authorize"), "forward"),
});

const ForwardSchema = v.strictObject({
  /** `strip` removes the client's Authorization header before forwarding; `forward` passes it on. */
  authorization: v.optional(v.picklist(["strip", "forward"], "must be strip or forward"), "strip"),
  /** Header namespace for verified claims; every client header in it is removed on every path. */
  header_prefix: v.optional(v.pipe(headerName, v.regex(/-$/, "must end with -")), "x-auth-"),
  /** Extra claim headers: header name (inside `header_prefix`) -> dotted claim path. */
  claim_headers: v.optional(v.record(headerName, claimPath), {}),
  /** Longest claim header value, in bytes; longer values are dropped (and logged by name). */
  max_header_bytes: bounded(64, 8_192, 1_024),
  /** Milliseconds to wait for the origin's response headers before answering 504. */
  timeout_ms: bounded(100, 600_000, 30_000),
  /** Forward through this service binding (another Worker) instead of ORIGIN_URL or the route's origin. */
  service: v.optional(bindingName),
  /** A short-lived signed assertion per forwarded request, bound to it (README "Origin protection"). */
  assertion: v.optional(
    v.strictObject({
      /** Request header carrying the assertion; client copies are always removed. */
      header: v.optional(headerName, "x-portcullis-assertion"),
      /** The assertion's `iss`: names this gate. */
      issuer: v.pipe(v.string(), v.minLength(1), printable),
      /** The assertion's `aud`: names the origin. */
      audience: v.pipe(v.string(), v.minLength(1), printable),
      /** Name of the `wrangler secret` with the private signing JWK, or `{"keys": [...]}` (the first signs). */
      signing_keys: bindingName,
      /** Assertion lifetime in seconds (at most 60). */
      ttl: bounded(1, 60, 30),
      /** Where the public keys are served, for the origin's verifier. */
      jwks_path: v.optional(v.pipe(v.string(), v.regex(/^\/[A-Za-z0-9._~/-]*$/, "must be an absolute path")), "/.well-known/portcullis-keys.json"),
    }),
  ),
  /** A static secret header for origins that cannot verify assertions (weaker: README "Origin protection"). */
  shared_secret: v.optional(
    v.strictObject({
      header: v.optional(headerName, "x-portcullis-secret"),
      /** Name of the `wrangler secret` holding the value. */
      secret: bindingName,
    }),
  ),
});

/** One protected resource (RFC 9728): its identifier, its metadata document, the requests it covers. */
const ResourceMetadataSchema = v.strictObject({
  /**
   * RFC 9728 `resource`: this API's identifier (an https URL without query or fragment). Its path says
   * which requests it covers (that path and below; the longest covering resource wins) and where its
   * document is served (`/.well-known/oauth-protected-resource` + the path).
   */
  resource: v.pipe(
    httpUrl,
    v.check((url) => !url.includes("#") && !url.includes("?"), "must have no query or fragment (RFC 9728 section 1.2)"),
  ),
  authorization_servers: v.pipe(v.array(httpUrl), v.minLength(1)),
  /** Overrides the scopes computed from the rules that cover this resource. */
  scopes_supported: v.optional(v.array(scopeToken)),
  resource_name: v.optional(v.pipe(v.string(), printable)),
  resource_documentation: v.optional(httpUrl),
});

export const ConfigSchema = v.strictObject({
  /** The `realm` of every Bearer challenge. Never derived from the request. */
  realm: v.optional(v.pipe(v.string(), v.minLength(1), printable), "api"),
  /**
   * One protected resource (a table) or several behind one gate (an array of tables, each with its own
   * path-specific document); read through `protectedResourceList`.
   */
  resource_metadata: v.optional(
    v.lazy((input) => (Array.isArray(input) ? v.pipe(v.array(ResourceMetadataSchema), v.minLength(1, "must list at least one resource")) : ResourceMetadataSchema)),
  ),
  token: v.optional(
    v.strictObject({
      /** Tokens longer than this are refused before any decoding. */
      max_length: bounded(256, 65_536, 8_192),
      /** Accept RFC 6750 2.3 `?access_token=` (discouraged by the RFC; off by default). */
      allow_query: v.optional(v.boolean(), false),
      /** Characters accepted in tokens beyond RFC 6750's b64token (only `|`, which Amazon's tokens contain). */
      extra_characters: v.optional(v.picklist(["", "|"], 'must be "" or "|"'), ""),
    }),
    {},
  ),
  issuers: v.pipe(v.array(IssuerSchema), v.minLength(1, "must list at least one issuer")),
  routes: v.pipe(v.array(RouteSchema), v.minLength(1, "must list at least one route")),
  forward: v.optional(ForwardSchema, {}),
  /** Per-isolate cache of successful JWT verifications (README "Verified-token cache"). */
  token_cache: v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), true),
      /** Entries per isolate; the least recently used go first. */
      max_entries: bounded(100, 1_000_000, 10_000),
      /** Longest reuse of one verification, in seconds, even when the token lives longer. */
      max_ttl: bounded(1, 3_600, 300),
    }),
    {},
  ),
  paths: v.optional(PathsSchema, {}),
  methods: v.optional(MethodsSchema, {}),
  log: v.optional(
    v.strictObject({
      /**
       * One decision line per allowed request (default). `false` keeps denials, errors, report-only and
       * key-set lines only: for high-traffic routes, where a line per request costs CPU and log volume.
       */
      allowed: v.optional(v.boolean(), true),
    }),
    {},
  ),
  /** Name of the Workers KV binding that shares JWKS across isolates; absent binding = memory only. */
  kv_binding: v.optional(bindingName, "PORTCULLIS_KV"),
  /** Name of the Durable Object namespace binding that remembers DPoP proofs (`jti`) until they expire. */
  dpop_replay_binding: v.optional(bindingName, "PORTCULLIS_DPOP"),
});

/** An issuer as users write it: `issuer` may come from a `preset`. */
export type IssuerInput = Omit<v.InferInput<typeof IssuerSchema>, "issuer"> & { issuer?: string };
/** What users write (defaults optional). */
export type PortcullisConfig = Omit<v.InferInput<typeof ConfigSchema>, "issuers"> & { issuers: IssuerInput[] };
/** What the gate runs on (defaults filled in, cross-field rules checked). */
export type ResolvedConfig = v.InferOutput<typeof ConfigSchema>;
export type IssuerConfig = ResolvedConfig["issuers"][number];
export type RouteConfig = ResolvedConfig["routes"][number];
export type McpConfig = NonNullable<RouteConfig["mcp"]>;
export type McpOperationConfig = McpConfig["operations"][number];

export type ResourceConfig = v.InferOutput<typeof ResourceMetadataSchema>;

/** The configured protected resources, each with its field path (`resource_metadata` or `resource_metadata.2`). */
/** Where RFC 9728 metadata documents are served: this prefix, then the resource's path (section 3.1). */
export const METADATA_PREFIX = "/.well-known/oauth-protected-resource";

export function protectedResourceList(config: Pick<ResolvedConfig, "resource_metadata">): { resource: ResourceConfig; field: string }[] {
  const configured = config.resource_metadata;
  if (configured === undefined) return [];
  if (!Array.isArray(configured)) return [{ resource: configured, field: "resource_metadata" }];
  return configured.map((resource, i) => ({ resource, field: `resource_metadata.${i}` }));
}
