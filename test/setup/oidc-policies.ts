import { errors, type Configuration } from "oidc-provider";

/**
 * Introspection and revocation as both loopback authorization servers (the test fixture and the e2e suite)
 * run them. Default introspection lets any confidential client introspect any token; here only the
 * resource-server clients (`introspectors`) may see other clients' tokens, anyone else gets
 * `{ "active": false }`. Revocation is the default (own tokens only, a mismatch is an invalid_request),
 * minus the "you SHOULD change it" notice the default prints.
 */
export function introspectionAndRevocation(introspectors: ReadonlySet<string>) {
  return {
    introspection: {
      enabled: true as const,
      allowedPolicy: (_ctx, client, token) => introspectors.has(client.clientId) || token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: (_ctx, client, token) => {
        if (token.clientId === client.clientId) return true;
        throw new errors.InvalidRequest("client is not authorized to revoke the presented token");
      },
    },
  } satisfies Pick<NonNullable<Configuration["features"]>, "introspection" | "revocation">;
}
