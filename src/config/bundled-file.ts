/**
 * The configuration file bundled into the Worker at build time (`portcullis.config.json`, README
 * "Configuration files"): its name as the user wrote it, and its parsed JSON, still to be validated.
 */
export interface BundledConfig {
  file: string;
  config: unknown;
}

/**
 * The bundled file, or nothing (the `[vars]` form). This module is a stand-in: `npm run build`, `deploy` and
 * `dev` (scripts/guarded.mjs) validate the file first, then have wrangler substitute this import
 * (`--alias ./config/bundled-file:...`) with a module generated from the exact bytes they validated. Tests
 * and plain `wrangler` runs get this stand-in, so they use the var.
 */
const bundled: BundledConfig | undefined = undefined;
export default bundled;
