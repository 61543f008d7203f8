import type { JWTPayload } from "jose";
import type { IssuerConfig } from "../config/schema";
import { invalidToken } from "../errors/errors";
import { Introspector } from "./introspection";
import { isJoseShaped } from "./jws";
import { JwtVerifier, keySetDeps, type VerifyDeps } from "./jwt";

/**
 * Which validation a token gets: JWTs are verified locally (and also introspected when their issuer says
 * `introspection.jwts` or the route says `introspect`); anything else goes to the one issuer that takes
 * opaque tokens, or is refused as an invalid token when there is none.
 */

export interface ValidatedToken {
  issuer: string;
  claims: JWTPayload;
  kid: string | undefined;
  via: "jwt" | "introspection" | "jwt+introspection";
}

export class TokenValidator {
  readonly #jwt: JwtVerifier;
  readonly #issuers: Map<string, IssuerConfig>;
  readonly #introspectors = new Map<string, Introspector>();
  readonly #opaqueIssuer: IssuerConfig | undefined;

  constructor(issuers: readonly IssuerConfig[]) {
    this.#jwt = new JwtVerifier(issuers);
    this.#issuers = new Map(issuers.map((issuer) => [issuer.issuer, issuer]));
    for (const issuer of issuers) if (issuer.introspection) this.#introspectors.set(issuer.issuer, new Introspector(issuer));
    this.#opaqueIssuer = issuers.find((issuer) => issuer.introspection?.opaque_tokens);
  }

  get jwt(): JwtVerifier {
    return this.#jwt;
  }

  async validate(token: string, options: { introspect: boolean }, deps: VerifyDeps): Promise<ValidatedToken> {
    if (isJoseShaped(token)) {
      const verified = await this.#jwt.verify(token, deps);
      const issuer = this.#issuers.get(verified.issuer)!;
      if (!(issuer.introspection?.jwts || options.introspect)) return { ...verified, via: "jwt" };
      await this.#introspect(issuer, token, deps);
      return { ...verified, via: "jwt+introspection" };
    }
    if (!this.#opaqueIssuer) throw invalidToken("malformed_token");
    const claims = await this.#introspect(this.#opaqueIssuer, token, deps);
    return { issuer: this.#opaqueIssuer.issuer, claims, kid: undefined, via: "introspection" };
  }

  #introspect(issuer: IssuerConfig, token: string, deps: VerifyDeps): Promise<JWTPayload> {
    const introspector = this.#introspectors.get(issuer.issuer);
    // Configuration validation guarantees an introspector wherever one is asked for.
    if (!introspector) throw invalidToken("introspection_not_configured");
    return introspector.introspect(token, { ...keySetDeps(issuer, deps), binding: deps.binding });
  }
}
