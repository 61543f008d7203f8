import type { JWTPayload } from "jose";
import type { IssuerConfig, ResolvedConfig } from "../config/schema";
import { encodeHeaderValue, setForwardedHost, stripControlledHeaders, type HeaderKind } from "../forward/headers";
import { claimAt } from "../lib/claim-path";
import type { LogFn } from "../lib/log";
import { grantedScopes } from "../policy/scopes";
import type { SenderConstraint } from "../validate/sender";

/**
 * The verified identity and the headers the origin gets: the client's headers with the identity namespace,
 * the gate's own headers and the forwarded-host headers cleared, then the verified claims and the matched
 * host set.
 */

export interface Identity {
  issuer: string;
  subject: string | undefined;
  clientId: string | undefined;
  scopes: ReadonlySet<string>;
  /** Verified claims. Treat as data: never log them. */
  claims: JWTPayload;
  /** How the token was bound to this request's sender (DPoP key, client certificate); absent for a bearer token. */
  sender?: SenderConstraint;
}

export function toIdentity(issuer: IssuerConfig, claims: JWTPayload, sender?: SenderConstraint): Identity {
  const clientId = typeof claims.client_id === "string" ? claims.client_id : typeof claims.azp === "string" ? claims.azp : undefined;
  return {
    // The token's own `iss` (for a `{tenantid}` issuer: the tenant's), verified equal to the configuration.
    issuer: typeof claims.iss === "string" ? claims.iss : issuer.issuer,
    subject: typeof claims.sub === "string" ? claims.sub : undefined,
    clientId,
    scopes: grantedScopes(claims, issuer.scopes_from),
    claims,
    ...(sender ? { sender } : {}),
  };
}

/** `cnf-method`: the confirmation methods proven, space-separated (`dpop`, `mtls`, `dpop mtls`). */
export function confirmationMethods(sender: SenderConstraint): string {
  return [sender.jkt === undefined ? "" : "dpop", sender["x5t#S256"] === undefined ? "" : "mtls"].filter(Boolean).join(" ");
}

/**
 * The headers to forward with, from `source` (the client's headers, or for a preflight its CORS headers):
 * stripped, then `identity`'s claims set (when given), then the host the rules matched and the scheme.
 */
export type ForwardedHeaders = (source: Headers, identity: Identity | undefined, host: string, protocol: string) => Headers;

export function forwardedHeaders(forward: ResolvedConfig["forward"], log: LogFn): ForwardedHeaders {
  const { header_prefix: prefix, max_header_bytes: max, claim_headers, authorization } = forward;
  const strip = { own: [forward.assertion?.header, forward.shared_secret?.header], authorization: authorization === "strip" };
  const claimHeaders = Object.entries(claim_headers);
  const set = (headers: Headers, name: string, value: unknown, kind: HeaderKind) => {
    if (value === undefined) return;
    const encoded = encodeHeaderValue(value, kind, max);
    if (encoded === undefined) log({ event: "claim_header_dropped", header: name, reason: "unencodable_or_too_long" });
    else headers.set(name, encoded);
  };
  return (source, identity, host, protocol) => {
    const headers = new Headers(source);
    stripControlledHeaders(headers, prefix, strip);
    if (identity) {
      set(headers, `${prefix}sub`, identity.subject, "string");
      set(headers, `${prefix}client-id`, identity.clientId, "string");
      set(headers, `${prefix}scope`, [...identity.scopes].join(" ") || undefined, "string");
      set(headers, `${prefix}issuer`, identity.issuer, "string");
      // Sender-constrained: the method and the thumbprint the request proved (cleared from client input with the namespace).
      if (identity.sender) {
        set(headers, `${prefix}cnf-method`, confirmationMethods(identity.sender), "string");
        set(headers, `${prefix}cnf-jkt`, identity.sender.jkt, "string");
        set(headers, `${prefix}cnf-x5t-s256`, identity.sender["x5t#S256"], "string");
      }
      for (const [name, path] of claimHeaders) set(headers, name, claimAt(identity.claims, path), "claim");
    }
    // Last, so nothing (not even a claim header under an odd prefix) can replace the host the rules matched.
    setForwardedHost(headers, host, protocol);
    return headers;
  };
}
