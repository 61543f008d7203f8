import { errors, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import type { Algorithm, IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import { refuseIdToken, refuseSenderConstrained, requireClaims } from "./claims";
import { ImportedKeys, kidMissReason, selectKey } from "./keys";
import type { Fetcher } from "./fetch-json";
import { KeySetCache, sha256Hex, type KeySetDeps } from "./jwks";
import { StaticKeySet } from "./static-keys";
import { checkHeader, parseCompactJws } from "./jws";

/**
 * RFC 9068 JWT access token validation. Order matters: structure, then issuer (chosen by the exact `iss`
 * among configured issuers), then the header against that issuer's policy, then that issuer's key, then
 * signature and claims through jose. Every refusal is a typed 401 with a reason code for the log.
 */

export interface VerifiedToken {
  issuer: string;
  claims: JWTPayload;
  kid: string | undefined;
  alg: Algorithm;
  /**
   * What verified it: the RFC 7638 thumbprint of the key, or for HMAC the SHA-256 (hex) of the secret (the
   * verified-token cache uses a hit only while this is still current; never logged).
   */
  thumbprint: string;
}

export interface VerifyDeps extends Omit<KeySetDeps, "fetch"> {
  fetch: typeof fetch;
  /** Worker bindings by name: secrets for `hmac_secret`, services for `jwks_service`. */
  binding: (name: string) => unknown;
}

/** RFC 7518 3.2: an HMAC key must be at least as long as the hash output. */
const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

interface IssuerState {
  config: IssuerConfig;
  keySet: KeySetCache | StaticKeySet;
  types: ReadonlySet<string>;
}

/** `at+jwt`, `AT+JWT` and `application/at+jwt` are the same media type (RFC 7515 4.1.9). */
const normalizeType = (typ: string) => typ.toLowerCase().replace(/^application\//, "");

/** Entra-style issuers with a `{tenantid}` placeholder; the tenant must be allowed and match `tid`. */
interface TemplateIssuer {
  pattern: RegExp;
  tenants: ReadonlySet<string>;
  state: IssuerState;
}

const TENANT = "([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})";

export class JwtVerifier {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #templates: TemplateIssuer[] = [];
  readonly #imported = new ImportedKeys();
  /** The last HMAC secret seen per binding, with its fingerprint: an unchanged secret costs no digest. */
  readonly #secrets = new Map<string, { secret: string; bytes: Uint8Array; fingerprint: string }>();

  constructor(issuers: readonly IssuerConfig[]) {
    for (const config of issuers) {
      // Provider issuers (Google, GitHub, Amazon) take opaque tokens only: a JWT naming them is refused.
      if (config.introspection && config.introspection.flavor !== "rfc7662" && !config.jwks_uri && !config.keys) continue;
      const state: IssuerState = {
        config,
        keySet: config.keys ? new StaticKeySet(config) : new KeySetCache(config),
        types: new Set(config.types.map(normalizeType)),
      };
      this.#issuers.set(config.issuer, state);
      if (config.issuer.includes("{tenantid}")) {
        const [before, after] = config.issuer.split("{tenantid}") as [string, string];
        const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
        this.#templates.push({ pattern: new RegExp(`^${escape(before)}${TENANT}${escape(after)}$`), tenants: new Set(config.tenants), state });
      }
    }
  }

  /** `decodedHeader`: the protected header when the caller has already decoded it. */
  async verify(token: string, deps: VerifyDeps, decodedHeader?: ProtectedHeaderParameters): Promise<VerifiedToken> {
    const { header, claims } = parseCompactJws(token, decodedHeader);
    if (typeof claims.iss !== "string") throw invalidToken("issuer_missing");
    const { issuer, tenant } = this.#issuerFor(claims.iss);
    const { config } = issuer;

    const alg = checkHeader(header, config.algorithms);
    if (typeof header.typ !== "string" || !issuer.types.has(normalizeType(header.typ))) {
      throw invalidToken("typ_not_allowed");
    }
    const kid = header.kid;

    const { key, thumbprint } = alg.startsWith("HS") ? await this.#hmacKey(config, alg, deps) : await this.#publicKey(issuer, alg, kid, deps);

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        issuer: claims.iss,
        audience: config.audiences,
        algorithms: [alg],
        clockTolerance: config.clock_tolerance,
        requiredClaims: ["exp", "aud"],
        currentDate: new Date(deps.now()),
      }));
    } catch (error) {
      throw invalidToken(joseReason(error));
    }
    checkExtraClaims(payload, config, deps.now());
    // A tenant-templated issuer: the token's own `tid` must name the tenant its `iss` names.
    if (tenant !== undefined && payload.tid !== tenant) throw invalidToken("tenant_mismatch");
    return { issuer: config.issuer, claims: payload, kid, alg, thumbprint };
  }

  /**
   * Whether what verified a token (`thumbprint` from `verify`) is still the issuer's, for the verified-token
   * cache: a key removed at the issuer invalidates its cached tokens as soon as the set is refreshed, and a
   * rotated HMAC secret (the binding's value changed) at once.
   */
  async stillHasKey(issuer: string, alg: Algorithm, thumbprint: string, deps: VerifyDeps): Promise<boolean> {
    const state = this.#issuers.get(issuer);
    if (!state) return false;
    if (alg.startsWith("HS")) {
      // A missing or short secret now: not a hit, so verification answers for it.
      return this.#hmacKey(state.config, alg, deps).then(({ thumbprint: current }) => current === thumbprint, () => false);
    }
    const keys = await state.keySet.keys(keySetDeps(state.config, deps));
    return keys.some((key) => key.thumbprint === thumbprint);
  }

  /** The issuer a token's `iss` names: an exact configured issuer, or an allowed tenant of a template. */
  #issuerFor(iss: string): { issuer: IssuerState; tenant?: string } {
    const exact = this.#issuers.get(iss);
    if (exact && !exact.config.issuer.includes("{tenantid}")) return { issuer: exact };
    for (const template of this.#templates) {
      const tenant = template.pattern.exec(iss)?.[1];
      if (tenant === undefined) continue;
      if (!template.tenants.has("*") && !template.tenants.has(tenant)) throw invalidToken("tenant_not_allowed");
      return { issuer: template.state, tenant };
    }
    throw invalidToken("issuer_unknown");
  }

  /** Refreshes every issuer's keys that are past half their life (the cron trigger). */
  async refreshScheduled(deps: VerifyDeps): Promise<Record<string, string>> {
    const results: Record<string, string> = {};
    for (const issuer of this.#issuers.values()) {
      try {
        results[issuer.config.issuer] = await issuer.keySet.refreshScheduled(keySetDeps(issuer.config, deps));
      } catch {
        results[issuer.config.issuer] = "failed";
      }
    }
    return results;
  }

  /** The issuer's HMAC secret as the binding holds it now (env is read per request), with its fingerprint. */
  async #hmacKey(config: IssuerConfig, alg: Algorithm, deps: VerifyDeps): Promise<{ key: Uint8Array; thumbprint: string }> {
    const name = config.hmac_secret ?? "";
    const value = name ? deps.binding(name) : undefined;
    const secret = typeof value === "string" ? value : "";
    let known = this.#secrets.get(name);
    if (known?.secret !== secret) {
      known = { secret, bytes: new TextEncoder().encode(secret), fingerprint: await sha256Hex(secret) };
      this.#secrets.set(name, known);
    }
    // A missing or short secret is an operator error: refuse rather than verify against a weak key.
    if (known.bytes.length < (HMAC_MIN_BYTES[alg] ?? 64)) {
      throw new GateError("server_error", "hmac_secret_unusable");
    }
    return { key: known.bytes, thumbprint: known.fingerprint };
  }

  async #publicKey(issuer: IssuerState, alg: Algorithm, kid: string | undefined, verifyDeps: VerifyDeps): Promise<{ key: CryptoKey; thumbprint: string }> {
    const deps = keySetDeps(issuer.config, verifyDeps);
    let keys = await issuer.keySet.keys(deps);
    let record = selectKey(keys, alg, kid);
    if (!record && kid !== undefined && !keys.some((key) => key.kid === kid)) {
      keys = await issuer.keySet.keysAfterMiss(deps, kid);
      record = selectKey(keys, alg, kid);
    }
    if (!record) {
      if (kid === undefined) throw invalidToken("no_single_key");
      throw invalidToken(keys.some((key) => key.kid === kid) ? kidMissReason(keys, alg, kid) : "kid_unknown");
    }
    try {
      return { key: await this.#imported.get(issuer.config.issuer, record, alg), thumbprint: record.thumbprint };
    } catch {
      throw invalidToken("key_unusable");
    }
  }
}

/** The dependencies for one issuer's I/O: its fetches go through its `jwks_service` binding when set. */
export function keySetDeps(config: IssuerConfig, deps: VerifyDeps): KeySetDeps {
  let fetcher: Fetcher = (url, init) => deps.fetch(url, init);
  if (config.jwks_service) {
    const service = deps.binding(config.jwks_service) as Fetcher | { fetch?: unknown } | undefined;
    if (!service || typeof (service as { fetch?: unknown }).fetch !== "function") {
      throw new GateError("server_error", "jwks_service_missing");
    }
    const binding = service as { fetch: Fetcher };
    fetcher = (url, init) => binding.fetch(url, init);
  }
  return { now: deps.now, kv: deps.kv, waitUntil: deps.waitUntil, log: deps.log, fetch: fetcher };
}

/**
 * Checks jose leaves to the caller: `iat`, then what makes a token something other than this API's Bearer
 * access token (any `cnf`; ID-token-only claims), then the issuer's `required_claims`.
 */
function checkExtraClaims(payload: JWTPayload, config: IssuerConfig, now: number): void {
  if (typeof payload.iat === "number" && payload.iat > now / 1000 + config.clock_tolerance) {
    throw invalidToken("iat_in_future");
  }
  refuseSenderConstrained(payload);
  refuseIdToken(payload);
  requireClaims(payload, config.required_claims);
}

function joseReason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "token_expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return "token_not_yet_valid";
    if (error.claim === "aud") return "audience_mismatch";
    if (error.claim === "iss") return "issuer_mismatch";
    return `claim_invalid_${error.claim.replace(/[^a-z_]/gi, "")}`.slice(0, 40);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "signature_invalid";
  if (error instanceof errors.JOSEAlgNotAllowed) return "alg_not_allowed";
  return "token_invalid";
}
