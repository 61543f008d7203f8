import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * `npm run test:e2e`: the end-to-end suite, in Node (not the workers pool). The test file starts and stops a
 * real authorization server (oidc-provider), Portcullis under `wrangler dev` and a recording origin, all on
 * loopback. Kept apart from `npm test` (vitest.config.ts includes test/**\/*.test.ts only).
 */
export default defineConfig({
  root: join(dirname(fileURLToPath(import.meta.url)), ".."),
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    // One wrangler dev per file; files (if more are added) run one after another.
    fileParallelism: false,
    testTimeout: 30_000,
    // beforeAll waits for wrangler dev (bundling and workerd start-up).
    hookTimeout: 120_000,
    teardownTimeout: 20_000,
  },
});
