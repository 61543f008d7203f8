import { jwtVerify, type JWTPayload, type JWTVerifyOptions, type ProtectedHeaderParameters } from "jose";
import { JOSEAlgNotAllowed, JWSSignatureVerificationFailed, JWTClaimValidationFailed, JWTExpired } from "jose/errors";
import { TENANT_ID, type Algorithm, type IssuerConfig } from "../config/schema";
import { GateError, invalidToken } from "../errors/errors";
import { serviceFetch } from "../lib/bindings";
import type { Deps } from "../lib/deps";
import { sha256Hex } from "../lib/digest";
import { confirmationOf, refuseIdToken, requireClaims } from "./claims";
import { ImportedKeys, kidMissReason, selectKey } from "./keys";
import { KeySetCache } from "./jwks";
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

/** RFC 7518 3.2: an HMAC key must be at least as long as the hash output. */
const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

/** A JWT issuer with what is derived once from its configuration. */
export interface JwtIssuer {
  config: IssuerConfig;
  /** Accepted `typ` values, normalized. */
  types: ReadonlySet<string>;
}

interface IssuerState extends JwtIssuer {
  keySet: KeySetCache | StaticKeySet;
}

/** Provider issuers (Google, GitHub, Amazon) take opaque tokens only: a JWT naming them is refused. */
export function takesJwts(config: IssuerConfig): boolean {
  return !(config.introspection && config.introspection.flavor !== "rfc7662" && !config.jwks_uri && !config.keys);
}

export function jwtIssuer(config: IssuerConfig): JwtIssuer {
  return { config, types: new Set(config.types.map(normalizeType)) };
}

/** `at+jwt`, `AT+JWT` and `application/at+jwt` are the same media type (RFC 7515 4.1.9). */
const normalizeType = (typ: string) => typ.toLowerCase().replace(/^application\//, "");

/** The header's `typ` must be one the issuer accepts. */
export function checkType(header: ProtectedHeaderParameters, issuer: JwtIssuer): void {
  if (typeof header.typ !== "string" || !issuer.types.has(normalizeType(header.typ))) throw invalidToken("typ_not_allowed");
}

const TENANT = `(${TENANT_ID})`;

/**
 * Chooses the issuer a token's `iss` names: an exact configured issuer, or an allowed tenant of an
 * Entra-style issuer with a `{tenantid}` placeholder (whose `tid` must then match: `checkExtraClaims`).
 * The verifier and explain both choose with this.
 */
export class IssuerSelector<T extends JwtIssuer> {
  readonly #exact = new Map<string, T>();
  readonly #templates: { pattern: RegExp; tenants: ReadonlySet<string>; issuer: T }[] = [];

  constructor(issuers: Iterable<T>) {
    for (const issuer of issuers) {
      const name = issuer.config.issuer;
      this.#exact.set(name, issuer);
      if (!name.includes("{tenantid}")) continue;
      const [before, after] = name.split("{tenantid}") as [string, string];
      const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      this.#templates.push({ pattern: new RegExp(`^${escape(before)}${TENANT}${escape(after)}$`), tenants: new Set(issuer.config.tenants), issuer });
    }
  }

  select(iss: string): { issuer: T; tenant?: string } {
    const exact = this.#exact.get(iss);
    if (exact && !exact.config.issuer.includes("{tenantid}")) return { issuer: exact };
    for (const template of this.#templates) {
      const tenant = template.pattern.exec(iss)?.[1];
      if (tenant === undefined) continue;
      if (!template.tenants.has("*") && !template.tenants.has(tenant)) throw invalidToken("tenant_not_allowed");
      return { issuer: template.issuer, tenant };
    }
    throw invalidToken("issuer_unknown");
  }
}

/**
 * What jose checks of the claims (`iss` as selected, `aud`, `exp` required, `nbf`, the clock tolerance), in
 * one place: the verifier's `jwtVerify` and explain's offline `UnsecuredJWT.decode` both take these.
 */
export function verifyOptions(config: IssuerConfig, iss: string, alg: Algorithm, now: number): JWTVerifyOptions {
  return {
    issuer: iss,
    audience: config.audiences,
    algorithms: [alg],
    clockTolerance: config.clock_tolerance,
    requiredClaims: ["exp", "aud"],
    currentDate: new Date(now),
  };
}

export class JwtVerifier {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #selector: IssuerSelector<IssuerState>;
  readonly #imported = new ImportedKeys();
  /** The last HMAC secret seen per binding, with its fingerprint: an unchanged secret costs no digest. */
  readonly #secrets = new Map<string, { secret: string; bytes: Uint8Array; fingerprint: string }>();

  constructor(issuers: readonly IssuerConfig[]) {
    for (const config of issuers.filter(takesJwts)) {
      this.#issuers.set(config.issuer, { ...jwtIssuer(config), keySet: config.keys ? new StaticKeySet(config) : new KeySetCache(config) });
    }
    this.#selector = new IssuerSelector(this.#issuers.values());
  }

  /** `decodedHeader`: the protected header when the caller has already decoded it. */
  async verify(token: string, deps: Deps, decodedHeader?: ProtectedHeaderParameters): Promise<VerifiedToken> {
    const { header, claims } = parseCompactJws(token, decodedHeader);
    if (typeof claims.iss !== "string") throw invalidToken("issuer_missing");
    const { issuer, tenant } = this.#selector.select(claims.iss);
    const { config } = issuer;

    // explain.ts (pipeline/) makes the checks before the key and after the signature offline, with these functions.
    const alg = checkHeader(header, config.algorithms);
    checkType(header, issuer);
    const kid = header.kid;

    const { key, thumbprint } = alg.startsWith("HS") ? await this.#hmacKey(config, alg, deps) : await this.#publicKey(issuer, alg, kid, deps);

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, verifyOptions(config, claims.iss, alg, deps.now())));
    } catch (error) {
      throw invalidToken(joseReason(error));
    }
    checkExtraClaims(payload, config, deps.now(), tenant);
    return { issuer: config.issuer, claims: payload, kid, alg, thumbprint };
  }

  /**
   * Whether what verified a token (`thumbprint` from `verify`) is still the key verification would choose
   * for it, for the verified-token cache: the one key the current set has for the token's `alg` and `kid`
   * (`selectKey`), so a key removed at the issuer, re-listed under another `alg` or `kid`, or joined by a
   * conflicting key invalidates its cached tokens as soon as the set is refreshed, and a rotated HMAC secret
   * (the binding's value changed) at once.
   */
  async stillHasKey(issuer: string, alg: Algorithm, kid: string | undefined, thumbprint: string, deps: Deps): Promise<boolean> {
    const state = this.#issuers.get(issuer);
    if (!state) return false;
    if (alg.startsWith("HS")) {
      // A missing or short secret now: not a hit, so verification answers for it.
      return this.#hmacKey(state.config, alg, deps).then(({ thumbprint: current }) => current === thumbprint, () => false);
    }
    const keys = await state.keySet.keys(issuerDeps(state.config, deps));
    return selectKey(keys, alg, kid)?.thumbprint === thumbprint;
  }

  /** Refreshes every issuer's keys that are past half their life (the cron trigger). */
  async refreshScheduled(deps: Deps): Promise<Record<string, string>> {
    const results: Record<string, string> = {};
    for (const issuer of this.#issuers.values()) {
      try {
        results[issuer.config.issuer] = await issuer.keySet.refreshScheduled(issuerDeps(issuer.config, deps));
      } catch {
        results[issuer.config.issuer] = "failed";
      }
    }
    return results;
  }

  /** The issuer's HMAC secret as the binding holds it now (env is read per request), with its fingerprint. */
  async #hmacKey(config: IssuerConfig, alg: Algorithm, deps: Deps): Promise<{ key: Uint8Array; thumbprint: string }> {
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

  async #publicKey(issuer: IssuerState, alg: Algorithm, kid: string | undefined, requestDeps: Deps): Promise<{ key: CryptoKey; thumbprint: string }> {
    const deps = issuerDeps(issuer.config, requestDeps);
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

/**
 * The dependencies for one issuer's I/O (key sets, metadata, introspection): its fetches go through its
 * `jwks_service` binding when set, a missing binding being a 500, never a fallback to the open internet.
 */
export function issuerDeps(config: IssuerConfig, deps: Deps): Deps {
  if (!config.jwks_service) return deps;
  const fetch = serviceFetch(deps.binding(config.jwks_service));
  if (!fetch) throw new GateError("server_error", "jwks_service_missing");
  return { ...deps, fetch };
}

/**
 * Checks jose leaves to the caller: `iat`, then what makes a token something other than this API's Bearer
 * access token (a `cnf` of a kind the gate cannot check; ID-token-only claims), then the issuer's `required_claims`, then for a
 * tenant-templated issuer that the token's own `tid` names the tenant its `iss` names.
 */
export function checkExtraClaims(payload: JWTPayload, config: IssuerConfig, now: number, tenant: string | undefined): void {
  if (typeof payload.iat === "number" && payload.iat > now / 1000 + config.clock_tolerance) {
    throw invalidToken("iat_in_future");
  }
  confirmationOf(payload);
  refuseIdToken(payload);
  requireClaims(payload, config.required_claims);
  if (tenant !== undefined && payload.tid !== tenant) throw invalidToken("tenant_mismatch");
}

/** jose's claim-set errors as reason codes. */
export function joseReason(error: unknown): string {
  if (error instanceof JWTExpired) return "token_expired";
  if (error instanceof JWTClaimValidationFailed) {
    if (error.claim === "nbf") return "token_not_yet_valid";
    if (error.claim === "aud") return "audience_mismatch";
    if (error.claim === "iss") return "issuer_mismatch";
    return `claim_invalid_${error.claim.replace(/[^a-z_]/gi, "")}`.slice(0, 40);
  }
  if (error instanceof JWSSignatureVerificationFailed) return "signature_invalid";
  if (error instanceof JOSEAlgNotAllowed) return "alg_not_allowed";
  return "token_invalid";
}
