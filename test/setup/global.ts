import { createLocalJWKSet, exportJWK, generateKeyPair } from "jose";
import { startExampleOrigin } from "../../examples/origin-node/server.mjs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { startAuthorizationServer } from "./authorization-server";
import { closedPortUrl, listen } from "./fixtures";
import { bundleIsolateB } from "./isolate-b";
import { loadJwsVectors } from "./vectors";

/** Starts the loopback fixtures and hands their URLs (and the Worker-entry test key) to the tests. */
export default async function setup(project: TestProject) {
  await bundleIsolateB();
  const issuer = await listen("issuer");
  const origin = await listen("origin");
  const deadOrigin = await closedPortUrl();
  const authorizationServer = await startAuthorizationServer();

  // The deployed-Worker tests (SELF) use a fixed namespace configured here, before the Worker starts.
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "self-1", alg: "ES256", use: "sig" };
  await fetch(`${issuer.url}/self/jwks/_set`, { method: "POST", body: JSON.stringify({ jwks: { keys: [publicJwk] } }) });

  // Origin protection: the gate signs assertions with this key; the example origin trusts its public half.
  const assertionKeys = await generateKeyPair("EdDSA", { extractable: true });
  const assertionPublic = { ...(await exportJWK(assertionKeys.publicKey)), kid: "assert-1", alg: "EdDSA", use: "sig" };
  const exampleOrigin = await startExampleOrigin({
    issuer: "https://gate.test",
    audience: "example-origin",
    keys: createLocalJWKSet({ keys: [assertionPublic] }),
  });
  project.provide("assertionPrivateJwk", JSON.stringify({ ...(await exportJWK(assertionKeys.privateKey)), kid: "assert-1" }));
  project.provide("exampleOriginUrl", exampleOrigin.url);

  // A self-signed test certificate (and its key) for static-key issuers: test/fixtures, test material only.
  const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");
  project.provide(
    "staticCertificate",
    JSON.stringify({
      certificate: await readFile(join(fixtures, "static-cert.pem"), "utf8"),
      privateKey: await readFile(join(fixtures, "static-cert.pkcs8.pem"), "utf8"),
    }),
  );

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
    await Promise.all(
      [issuer, origin, exampleOrigin].map(({ server }) => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
    await authorizationServer.close();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    issuerUrl: string;
    originUrl: string;
    deadOriginUrl: string;
    selfPrivateJwk: string;
    /** Private Ed25519 JWK the gate signs origin assertions with (kid assert-1). */
    assertionPrivateJwk: string;
    /** JSON `{ certificate, privateKey }`: a self-signed RSA test certificate (PEM) and its PKCS#8 key. */
    staticCertificate: string;
    /** examples/origin-node, trusting assertions with iss https://gate.test, aud example-origin. */
    exampleOriginUrl: string;
    /** JSON of `JwsVectors` (test/setup/vectors.ts), or null when the shared vectors folder is absent. */
    jwsVectors: string | null;
    /**
     * JSON of the loopback oidc-provider (test/setup/authorization-server.ts): `{ issuer, tokenEndpoint,
     * introspectionEndpoint, revocationEndpoint, clients: { api, gate, gatePost } }`, each client `{ id, secret }`.
     */
    authorizationServer: string;
    /** How test/helpers.ts mounts gates: the Worker pipeline, or the Hono middleware (vitest.config.ts projects). */
    mount: "worker" | "hono";
  }
}
