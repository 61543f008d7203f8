/**
 * Issuer presets: the endpoints, token formats and claim mappings of common providers, so a user writes
 * only their client id, tenant and audience (README "Presets"). A preset's values sit under the user's:
 * anything written in the configuration wins.
 */

const ENTRA = {
  jwks_uri: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
  algorithms: ["RS256"],
  // Entra access tokens carry `typ: JWT`, not RFC 9068's `at+jwt`: this preset opts out explicitly.
  types: ["JWT"],
  // Delegated permissions arrive in `scp` (space-separated), application permissions in `roles`.
  scopes_from: [{ claim: "scp" }, { claim: "roles" }],
};

export const PRESETS: Record<string, Record<string, unknown>> = {
  /** Any OpenID Connect / RFC 8414 issuer: keys discovered from its metadata. */
  oidc: {},
  /** Any RFC 7662 introspection endpoint, discovered from metadata unless given. */
  rfc7662: { introspection: { flavor: "rfc7662" } },
  // Provider presets take opaque tokens only: a JWT claiming these issuers is refused without any fetch.
  google: {
    issuer: "https://accounts.google.com",
    introspection: { flavor: "google", endpoint: "https://oauth2.googleapis.com/tokeninfo", token_prefixes: ["ya29."] },
  },
  github: {
    issuer: "https://github.com",
    introspection: {
      flavor: "github",
      endpoint: "https://api.github.com/applications/{client_id}/token",
      token_prefixes: ["gho_", "ghu_", "ghp_", "github_pat_"],
    },
  },
  amazon: {
    issuer: "https://www.amazon.com",
    introspection: { flavor: "amazon", endpoint: "https://api.amazon.com/auth/o2/tokeninfo", token_prefixes: ["Atza|"] },
  },
  // Entra access tokens always name the calling app (v2 `azp`, v1 `appid`); Entra ID tokens never do, and
  // they may carry `roles`, so scopes cannot tell the two apart (Microsoft's access and ID token claim references).
  entra: { issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", ...ENTRA, required_claims: ["azp"] },
  "entra-v1": {
    issuer: "https://sts.windows.net/{tenantid}/",
    ...ENTRA,
    jwks_uri: "https://login.microsoftonline.com/common/discovery/keys",
    required_claims: ["appid"],
  },
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The issuer entry with its preset's values filled in under the user's (one level deep for tables). */
export function applyPreset(issuer: unknown): { issuer: unknown; error?: string } {
  if (!isObject(issuer) || issuer.preset === undefined) return { issuer };
  const preset = typeof issuer.preset === "string" ? PRESETS[issuer.preset] : undefined;
  if (!preset || !Object.hasOwn(PRESETS, issuer.preset as string)) {
    return { issuer, error: `must be one of ${Object.keys(PRESETS).join(", ")}` };
  }
  const merged: Record<string, unknown> = { ...preset, ...issuer };
  for (const [key, value] of Object.entries(preset)) {
    if (isObject(value) && isObject(issuer[key])) merged[key] = { ...value, ...issuer[key] };
  }
  return { issuer: merged };
}
