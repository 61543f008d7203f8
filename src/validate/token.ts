import type { JWTPayload, ProtectedHeaderParameters } from "jose";
import type { IssuerConfig } from "../config/schema";
import { invalidToken } from "../errors/errors";
import { requireClaims } from "./claims";
import { Introspector } from "./introspection";
import { decryptNested } from "./jwe";
import { compactJwsHeader } from "./jws";
import type { Deps } from "../lib/deps";
import { issuerDeps, JwtVerifier } from "./jwt";
import { tokenKey, VerifiedTokenCache, type CachedVerification } from "./token-cache";

/**
 * Which validation a token gets: JWTs are verified locally (and also introspected when their issuer says
 * `introspection.jwts` or the route says `introspect`); anything else goes to the one issuer that takes
 * opaque tokens, or is refused as an invalid token when there is none.
 */

export interface ValidatedToken {
  issuer: string;
  claims: JWTPayload;
  kid: string | undefined;
  via: "jwt" | "jwt_cached" | "introspection" | "jwt+introspection" | "jwt_cached+introspection";
}

/**
 * The issuer that introspects an opaque token: the first whose `token_prefixes` the token starts with, else
 * the one taking all other opaque tokens (if any). The validator and explain both choose with this.
 */
export function opaqueTokenIssuer(issuers: readonly IssuerConfig[]): (token: string) => IssuerConfig | undefined {
  const opaque = issuers.filter((issuer) => issuer.introspection?.opaque_tokens);
  const prefixed = opaque.filter((issuer) => issuer.introspection!.token_prefixes);
  const catchAll = opaque.find((issuer) => !issuer.introspection!.token_prefixes);
  return (token) => prefixed.find((candidate) => candidate.introspection!.token_prefixes!.some((prefix) => token.startsWith(prefix))) ?? catchAll;
}

/** Whether a JWT is also introspected: its issuer says `introspection.jwts`, or the route says `introspect`. */
export const introspectsJwt = (issuer: IssuerConfig, options: { introspect: boolean }): boolean => issuer.introspection?.jwts === true || options.introspect;

export class TokenValidator {
  readonly #jwt: JwtVerifier;
  readonly #issuers: Map<string, IssuerConfig>;
  readonly #introspectors = new Map<string, Introspector>();
  readonly #opaque: (token: string) => IssuerConfig | undefined;
  readonly #cache: VerifiedTokenCache | undefined;
  readonly #decrypting: IssuerConfig[];

  constructor(issuers: readonly IssuerConfig[], cache: { enabled: boolean; max_entries: number; max_ttl: number } = { enabled: false, max_entries: 0, max_ttl: 0 }) {
    if (cache.enabled) this.#cache = new VerifiedTokenCache(cache.max_entries, cache.max_ttl * 1000);
    this.#jwt = new JwtVerifier(issuers);
    this.#issuers = new Map(issuers.map((issuer) => [issuer.issuer, issuer]));
    for (const issuer of issuers) if (issuer.introspection) this.#introspectors.set(issuer.issuer, new Introspector(issuer));
    this.#decrypting = issuers.filter((issuer) => issuer.decryption);
    this.#opaque = opaqueTokenIssuer(issuers);
  }

  get jwt(): JwtVerifier {
    return this.#jwt;
  }

  async validate(token: string, options: { introspect: boolean }, deps: Deps): Promise<ValidatedToken> {
    const segments = token.split(".");
    if (this.#decrypting.length && segments.length === 5) {
      const { jwt, issuer } = await decryptNested(token, this.#decrypting, deps.binding);
      // Nested once only, and the inner JWT must come from the issuer whose key decrypted it.
      if (jwt.split(".").length !== 3) throw invalidToken("jwe_not_nested_jwt");
      const inner = await this.validate(jwt, options, deps);
      if (inner.issuer !== issuer.issuer) throw invalidToken("jwe_issuer_mismatch");
      return inner;
    }
    // A cache hit proves the token is a JWT verified before: looked up first, it skips even the header decode.
    const key = this.#cache && segments.length === 3 ? await tokenKey(token) : undefined;
    const hit = key === undefined ? undefined : await this.#cacheHit(key, deps);
    // Decoded once here, both to tell a JWT from an opaque token and for verification.
    const header = hit ? undefined : compactJwsHeader(token, segments);
    if (hit || header || segments.length === 5) {
      const verified = hit ?? (await this.#verifyJwt(token, key, deps, header));
      const issuer = this.#issuers.get(verified.issuer)!;
      const via = hit ? "jwt_cached" : "jwt";
      if (!introspectsJwt(issuer, options)) return { issuer: verified.issuer, claims: verified.claims, kid: verified.kid, via };
      await this.#introspect(issuer, token, deps);
      return { issuer: verified.issuer, claims: verified.claims, kid: verified.kid, via: `${via}+introspection` };
    }
    const issuer = this.#opaque(token);
    if (!issuer) throw invalidToken("malformed_token");
    const claims = await this.#introspect(issuer, token, deps);
    // The answer is the identity here (for a JWT it is the JWT's claims, checked in jwt.ts).
    requireClaims(claims, issuer.required_claims);
    return { issuer: issuer.issuer, claims, kid: undefined, via: "introspection" };
  }

  /** JWT verification, stored in the verified-token cache when on (successes only; time re-checked on every hit). */
  async #cacheHit(key: string, deps: Deps): Promise<CachedVerification | undefined> {
    const hit = this.#cache!.get(key, deps.now());
    return hit && (await this.#jwt.stillHasKey(hit.issuer, hit.alg, hit.kid, hit.thumbprint, deps)) ? hit : undefined;
  }

  async #verifyJwt(token: string, key: string | undefined, deps: Deps, header: ProtectedHeaderParameters | undefined): Promise<CachedVerification> {
    const verified = await this.#jwt.verify(token, deps, header);
    if (this.#cache && key !== undefined) this.#cache.set(key, verified, this.#issuers.get(verified.issuer)!.clock_tolerance, deps.now());
    return verified;
  }

  #introspect(issuer: IssuerConfig, token: string, deps: Deps): Promise<JWTPayload> {
    const introspector = this.#introspectors.get(issuer.issuer);
    // Configuration validation guarantees an introspector wherever one is asked for.
    if (!introspector) throw invalidToken("introspection_not_configured");
    return introspector.introspect(token, issuerDeps(issuer, deps));
  }
}
