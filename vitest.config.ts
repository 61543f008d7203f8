import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: { bindings: { TEST_PORT: inject<number>("fixturePort") } },
    })),
  ],
  test: { globalSetup: ["./test/setup/global.ts"] },
});
