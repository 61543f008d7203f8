import { exportJWK, generateKeyPair } from "jose";
import type { TestProject } from "vitest/node";
import { startAuthorizationServer } from "./authorization-server";
import { closedPortUrl, listen } from "./fixtures";
import { loadJwsVectors } from "./vectors";

/** Starts the loopback fixtures and hands their URLs (and the Worker-entry test key) to the tests. */
export default async function setup(project: TestProject) {
  const issuer = await listen("issuer");
  const origin = await listen("origin");
  const deadOrigin = await closedPortUrl();
  const authorizationServer = await startAuthorizationServer();

  // The deployed-Worker tests (SELF) use a fixed namespace configured here, before the Worker starts.
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "self-1", alg: "ES256", use: "sig" };
  await fetch(`${issuer.url}/self/jwks/_set`, { method: "POST", body: JSON.stringify({ jwks: { keys: [publicJwk] } }) });

  project.provide("issuerUrl", issuer.url);
  project.provide("originUrl", origin.url);
  project.provide("deadOriginUrl", deadOrigin);
  project.provide("selfPrivateJwk", JSON.stringify({ ...(await exportJWK(privateKey)), kid: "self-1", alg: "ES256" }));
  project.provide("jwsVectors", await loadJwsVectors().then((vectors) => (vectors ? JSON.stringify(vectors) : null)));
  project.provide(
    "authorizationServer",
    JSON.stringify({
      issuer: authorizationServer.issuer,
      tokenEndpoint: authorizationServer.tokenEndpoint,
      introspectionEndpoint: authorizationServer.introspectionEndpoint,
      revocationEndpoint: authorizationServer.revocationEndpoint,
      clients: authorizationServer.clients,
    }),
  );

  return async () => {
    await Promise.all([issuer, origin].map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await authorizationServer.close();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    issuerUrl: string;
    originUrl: string;
    deadOriginUrl: string;
    selfPrivateJwk: string;
    /** JSON of `JwsVectors` (test/setup/vectors.ts), or null when the shared vectors folder is absent. */
    jwsVectors: string | null;
    /**
     * JSON of the loopback oidc-provider (test/setup/authorization-server.ts): `{ issuer, tokenEndpoint,
     * introspectionEndpoint, revocationEndpoint, clients: { api, gate, gatePost } }`, each client `{ id, secret }`.
     */
    authorizationServer: string;
  }
}
