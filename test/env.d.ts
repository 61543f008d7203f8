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
declare namespace Cloudflare {
  interface Env {
    /** The real Worker in a second isolate, sharing PORTCULLIS_DPOP (test/setup/isolate-b.ts). */
    GATE_ISOLATE_B: Fetcher;
  }
}
