// Bindings the tests see (wrangler.toml plus vitest.config.ts overrides).
declare namespace Cloudflare {
  interface Env {
    PORTCULLIS_KV: KVNamespace;
    PORTCULLIS_CONFIG: unknown;
    ORIGIN_URL: string;
  }
}
declare namespace Cloudflare {
  interface Env {
    ORIGIN_SERVICE: Fetcher;
  }
}
