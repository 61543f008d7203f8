import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", ".wrangler/", "coverage/", "bench/.out/", "bench/.exp/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
  {
    files: ["demo/**/*.mjs", "scripts/**/*.mjs", "examples/**/*.mjs", "bench/**/*.mjs", "bench/**/*.js"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", URL: "readonly", fetch: "readonly", Buffer: "readonly", URLSearchParams: "readonly", AbortSignal: "readonly", TextEncoder: "readonly", TextDecoder: "readonly", crypto: "readonly", Response: "readonly", Headers: "readonly", setInterval: "readonly", clearInterval: "readonly", AbortController: "readonly", performance: "readonly", Request: "readonly", structuredClone: "readonly", queueMicrotask: "readonly" },
    },
  },
);
