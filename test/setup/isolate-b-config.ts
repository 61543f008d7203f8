/** Configuration of the second gate isolate (isolate-b.ts); no Node imports, so tests in workerd can use it too. */

/** Its PORTCULLIS_CONFIG: the Worker-entry test issuer (the `/self/jwks` key, `selfPrivateJwk`), DPoP allowed. */
export const isolateBConfig = (issuerUrl: string) => ({
  realm: "isolate-b",
  issuers: [
    {
      issuer: "https://auth.example.test/",
      audiences: ["https://api.example.test"],
      jwks_uri: `${issuerUrl}/self/jwks`,
      algorithms: ["ES256"],
      dpop: { mode: "allowed" },
    },
  ],
  routes: [{ path: "/v1/items/**", methods: ["GET"], scopes: ["items:read"] }],
});
