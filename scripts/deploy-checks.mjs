// What must hold before a configuration ships, beyond what the Worker's own validator checks (that runs
// too, through check-config): Cloudflare's platform limits, which Miniflare does not enforce, and
// placeholders left from the template. Pure functions over wrangler's parsed config, for check-config and
// the guarded build/deploy (scripts/guarded.mjs).

/** developers.cloudflare.com/workers/platform/limits: "Environment variable size" and count. */
export const VAR_SIZE_LIMIT = 5 * 1024;
export const VAR_COUNT_LIMIT = 128;

/** Bytes a var takes once uploaded: wrangler sends a table as its JSON text. */
export function varBytes(value) {
  return new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value)).length;
}

/**
 * Platform limits on `[vars]`: one issue per var over the size limit, one if there are too many. For
 * PORTCULLIS_CONFIG the way out is named: the file form (`configFile`, the name for this --env), which the
 * build bundles into the Worker, so no variable limit applies.
 */
export function limitIssues(vars, configFile = "portcullis.config.json") {
  const issues = [];
  for (const [name, value] of Object.entries(vars)) {
    const bytes = varBytes(value);
    if (bytes > VAR_SIZE_LIMIT) {
      const way = name === "PORTCULLIS_CONFIG" ? `; move it to ${configFile} (the same JSON document as a file the build bundles into the Worker, no variable limit: README "Configuration files")` : "";
      issues.push({
        field: name,
        message: `is ${bytes} bytes as uploaded (JSON); Cloudflare limits an environment variable to 5 KB (${VAR_SIZE_LIMIT} bytes): deploying it would fail${way}`,
      });
    }
  }
  const count = Object.keys(vars).length;
  if (count > VAR_COUNT_LIMIT) issues.push({ field: "vars", message: `has ${count} variables; Cloudflare allows ${VAR_COUNT_LIMIT}` });
  return issues;
}

/** Template values that must be replaced before a real deploy. */
const PLACEHOLDER_TEXT = /^replace-with-/i;
const PLACEHOLDER_HOST = /(^|\.)example\.(com|org|net)$|\.example$|\.invalid$/i;

function hostOf(value) {
  try {
    return new URL(value).hostname;
  } catch {
    return undefined;
  }
}

/**
 * Placeholders: KV namespace ids such as `replace-with-your-kv-namespace-id`, and URLs on the reserved
 * example domains (RFC 2606) in ORIGIN_URL, issuers, JWKS and introspection endpoints, audiences and the
 * resource metadata. Walks the vars and the configuration file (`file`: `{ name, config }`) generically, so
 * every URL-valued field is covered.
 */
export function placeholderIssues(wrangler, file) {
  const issues = [];
  for (const [i, namespace] of (wrangler.kv_namespaces ?? []).entries()) {
    if (typeof namespace.id === "string" && PLACEHOLDER_TEXT.test(namespace.id)) {
      issues.push({ field: `kv_namespaces.${i}.id`, message: `is a placeholder ("${namespace.id}"): create the namespace with \`npx wrangler kv namespace create ${namespace.binding ?? "PORTCULLIS_KV"}\` and put its id here` });
    }
  }
  const walk = (value, field) => {
    if (typeof value === "string") {
      const host = hostOf(value);
      if (PLACEHOLDER_TEXT.test(value) || (host && PLACEHOLDER_HOST.test(host))) issues.push({ field, message: `is a placeholder ("${value}"): put your own value here` });
    } else if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${field}.${i}`));
    else if (value && typeof value === "object") for (const [key, item] of Object.entries(value)) walk(item, `${field}.${key}`);
  };
  for (const [name, value] of Object.entries(wrangler.vars ?? {})) walk(value, name);
  if (file) {
    const before = issues.length;
    walk(file.config, "");
    // Named as in check-config's other file messages: `portcullis.config.json: issuers.0.issuer`.
    for (const issue of issues.slice(before)) issue.field = issue.field ? `${file.name}: ${issue.field.slice(1)}` : file.name;
  }
  return issues;
}

/**
 * ` (route "name")` for an issue on `PORTCULLIS_CONFIG.routes.N...` or `portcullis.config.json: routes.N...`,
 * so a long table is easy to search.
 */
export function routeLabel(field, config) {
  const match = /^(?:PORTCULLIS_CONFIG\.|[^:]+: )routes\.(\d+)(\.|$)/.exec(field);
  const route = match && config && Array.isArray(config.routes) ? config.routes[Number(match[1])] : undefined;
  if (!route || typeof route !== "object") return "";
  const methods = Array.isArray(route.methods) ? route.methods.join(",") : "*";
  const label = typeof route.name === "string" ? route.name : `${methods} ${route.host ?? ""}${route.path ?? "?"}`;
  return ` (route "${label}")`;
}
