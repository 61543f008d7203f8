import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { ISOLATE_B_SCRIPT, isolateBConfig } from "./test/setup/isolate-b.ts";

/**
 * Tests run inside workerd (the Workers runtime) with real KV. Loopback fixtures (JWKS issuer, echo
 * origin) are started in Node by globalSetup; the Worker entry (SELF) gets a config pointing at them.
 */
export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // An auxiliary Worker standing in for an origin reached through a service binding.
        // GATE_ISOLATE_B: a second isolate running the real Worker (test/setup/isolate-b.ts), THREATS J3.
        serviceBindings: { ORIGIN_SERVICE: "origin-service", GATE_ISOLATE_B: "gate-isolate-b" },
        workers: [
          {
            name: "origin-service",
            modules: true,
            compatibilityDate: "2026-11-01",
            script: `export default {
              async fetch(request) {
                const body = request.body ? (await request.arrayBuffer()).byteLength : 0;
                return Response.json({ via: "service", method: request.method, url: request.url, headers: Object.fromEntries(request.headers), bodyBytes: body });
              },
            };`,
          },
          {
            name: "gate-isolate-b",
            modules: true,
            compatibilityDate: "2026-11-01",
            scriptPath: ISOLATE_B_SCRIPT,
            kvNamespaces: ["PORTCULLIS_KV"],
            // The test Worker's own namespace: the plugin names the Worker under test (which hosts the class,
            // wrangler.toml) `vitest-plugin-runner-<project>`, and each project's name is its `mount`.
            durableObjects: { PORTCULLIS_DPOP: { className: "DpopReplayStore", scriptName: `vitest-plugin-runner-${inject("mount")}` } },
            bindings: { ORIGIN_URL: inject("originUrl"), PORTCULLIS_CONFIG: isolateBConfig(inject("issuerUrl")) },
          },
        ],
        bindings: {
          ORIGIN_URL: inject("originUrl"),
          PORTCULLIS_CONFIG: {
            realm: "self-test",
            resource_metadata: {
              resource: "https://api.example.test",
              authorization_servers: ["https://auth.example.test/"],
              scopes_supported: ["items:read", "items:write"],
            },
            issuers: [
              {
                issuer: "https://auth.example.test/",
                audiences: ["https://api.example.test"],
                jwks_uri: `${inject("issuerUrl")}/self/jwks`,
              },
            ],
            routes: [
              { path: "/health", methods: ["GET"], access: "public" },
              { path: "/v1/items/**", methods: ["GET"], scopes: ["items:read"] },
              { path: "/v1/items/**", methods: ["POST", "PUT", "DELETE"], scopes: ["items:write"] },
            ],
            forward: { claim_headers: { "x-auth-email": "email" } },
          },
        },
      },
    })),
  ],
  test: {
    globalSetup: ["./test/setup/global.ts"],
    // Property tests run thousands of cases; on 2 busy cores one can pass 5 s without anything being wrong.
    testTimeout: 20_000,
    // Every gate test runs twice: through the Worker's pipeline (what `wrangler deploy` ships) and through
    // the Hono middleware + forwarder (what library users mount). Unit, conformance (the signature layer,
    // called directly) and Worker-entry tests run once.
    projects: [
      { extends: true, test: { name: "worker", include: ["test/**/*.test.ts"], provide: { mount: "worker" } } },
      { extends: true, test: { name: "hono", include: ["test/gate/**/*.test.ts"], provide: { mount: "hono" } } },
    ],
  },
});
