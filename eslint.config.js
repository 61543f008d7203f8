import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * One-way dependencies in src/ (README "How a request flows"): entries (index.ts, worker.ts, hono.ts) ->
 * pipeline/ -> stages (extract/, validate/, policy/, forward/) -> config/ types, errors/ -> lib/. Nothing
 * below pipeline/ imports pipeline/, an entry or hono; hono only in hono.ts; stages never import each other;
 * origin/ (shipped standalone as `portcullis/origin`) imports only jose. config/load.ts and config/rules.ts
 * (which check route patterns and header names with policy/ and forward/) are entry-level: pipeline/ and the
 * entries may import them, nothing below. Each folder lists what it must not import; type imports count.
 */
const forbid = (what, regex) => ({ regex, message: `${what} (one-way dependencies: README "How a request flows")` });
const ENTRIES = forbid("only the entries import an entry", String.raw`^\.\./(index|worker|hono)(\.ts)?$`);
const PIPELINE = forbid("nothing below pipeline/ imports pipeline/", String.raw`^\.\./pipeline/`);
const HONO = forbid("hono is imported by src/hono.ts only", String.raw`^hono($|/)`);
const CONFIG_LOADER = forbid("config/load.ts and config/rules.ts are entry-level", String.raw`^\.\./config/(load|rules)(\.ts)?$`);
const stage = (name) => forbid(`stages never import each other (${name}/)`, String.raw`^\.\./${name}/`);
const folder = (name, message) => forbid(message, String.raw`^\.\./${name}/`);
const BELOW_PIPELINE = [ENTRIES, PIPELINE, HONO, CONFIG_LOADER];
const STAGES = ["extract", "validate", "policy", "forward"];
const otherStages = (own) => STAGES.filter((name) => name !== own).map(stage);

const CONFIG_LOADER_FILES = ["src/config/load.ts", "src/config/rules.ts"];
const layers = [
  { files: ["src/index.ts", "src/worker.ts"], patterns: [HONO] },
  { files: ["src/pipeline/**"], patterns: [ENTRIES, HONO] },
  { files: CONFIG_LOADER_FILES, patterns: [ENTRIES, PIPELINE, HONO, stage("extract"), stage("validate")] },
  { files: ["src/extract/**"], patterns: [...BELOW_PIPELINE, ...otherStages("extract")] },
  { files: ["src/validate/**"], patterns: [...BELOW_PIPELINE, ...otherStages("validate")] },
  { files: ["src/policy/**"], patterns: [...BELOW_PIPELINE, ...otherStages("policy")] },
  { files: ["src/forward/**"], patterns: [...BELOW_PIPELINE, ...otherStages("forward")] },
  // config/ itself (schema, presets, origin): below the stages, above errors/ and lib/.
  { files: ["src/config/**"], ignores: CONFIG_LOADER_FILES, patterns: [...BELOW_PIPELINE, ...STAGES.map(stage), folder("origin", "config/ types import lib/ only"), forbid("config/load.ts and config/rules.ts are entry-level", String.raw`^\./(load|rules)(\.ts)?$`)] },
  { files: ["src/errors/**"], patterns: [...BELOW_PIPELINE, ...STAGES.map(stage), folder("config", "errors/ imports lib/ only"), folder("origin", "errors/ imports lib/ only")] },
  { files: ["src/lib/**"], patterns: [forbid("lib/ imports nothing else in src/", String.raw`^\.\./`), HONO] },
  { files: ["src/origin/**"], patterns: [forbid("origin/ is shipped standalone: it imports jose only", String.raw`^(?!jose$|\./)`)] },
];

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "build/", ".wrangler/", "coverage/", "bench/.out/", "bench/.exp/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
  ...layers.map(({ patterns, ...files }) => ({ ...files, rules: { "no-restricted-imports": ["error", { patterns }] } })),
  {
    files: ["demo/**/*.mjs", "scripts/**/*.mjs", "examples/**/*.mjs", "bench/**/*.mjs", "bench/**/*.js"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", URL: "readonly", fetch: "readonly", Buffer: "readonly", URLSearchParams: "readonly", AbortSignal: "readonly", TextEncoder: "readonly", TextDecoder: "readonly", crypto: "readonly", Response: "readonly", Headers: "readonly", setInterval: "readonly", clearInterval: "readonly", AbortController: "readonly", performance: "readonly", Request: "readonly", structuredClone: "readonly", queueMicrotask: "readonly" },
    },
  },
);
