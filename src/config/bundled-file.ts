/**
 * The configuration file bundled into the Worker at build time (`portcullis.config.json`, README
 * "Configuration files"): its name as the user wrote it, and its parsed JSON, still to be validated.
 */
export interface BundledConfig {
  file: string;
  config: unknown;
}

/** Set by `npm run dev` (wrangler `--define`); undeclared everywhere else. */
declare const __PORTCULLIS_CONFIG_FILE__: BundledConfig | undefined;

/**
 * The bundled file, or nothing (the `[vars]` form). scripts/guarded.mjs validates the file first
 * (check-config), then hands wrangler exactly what it validated: `npm run build`/`deploy` substitute this
 * whole module (`--alias ./config/bundled-file:<generated module>`, no size limit); `npm run dev` defines
 * `__PORTCULLIS_CONFIG_FILE__` (`--define`), because `wrangler dev` ignores `--alias`. Tests and plain
 * `wrangler` runs get neither, so they use the var.
 */
const bundled: BundledConfig | undefined = typeof __PORTCULLIS_CONFIG_FILE__ === "undefined" ? undefined : __PORTCULLIS_CONFIG_FILE__;
export default bundled;
