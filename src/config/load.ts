import * as v from "valibot";
import type { BundledConfig } from "./bundled-file";
import { applyPreset } from "./presets";
import { crossFieldIssues, type ConfigIssue } from "./rules";
import { ConfigSchema, type ResolvedConfig } from "./schema";

export type { ConfigIssue } from "./rules";
export type { BundledConfig } from "./bundled-file";

export type ConfigResult = { ok: true; config: ResolvedConfig } | { ok: false; issues: ConfigIssue[] };

/** Where the raw configuration came from: the bundled file or the `PORTCULLIS_CONFIG` var. */
export type ConfigSource = { ok: true; raw: unknown; name: string } | { ok: false; issues: ConfigIssue[] };

export const CONFIG_VAR = "PORTCULLIS_CONFIG";

/**
 * The one configuration to validate: the bundled file or the var, never both. Both set is refused (a
 * deploy that left an old var behind, or a file added beside it) rather than one silently winning.
 * Shared by the Worker (at every isolate start) and check-config (at build), so they cannot disagree.
 */
export function configSource(bundled: BundledConfig | undefined, variable: unknown): ConfigSource {
  if (bundled && variable !== undefined) {
    return { ok: false, issues: [{ field: CONFIG_VAR, message: `is set, and so is the configuration file ${bundled.file}: configure one of them, not both (remove the var, or the file)` }] };
  }
  return bundled ? { ok: true, raw: bundled.config, name: bundled.file } : { ok: true, raw: variable, name: CONFIG_VAR };
}

/**
 * A field as the user finds it: `PORTCULLIS_CONFIG.routes.3.path` in the var, `portcullis.config.json:
 * routes.3.path` in the file; the whole document (`(root)`) is the var's or the file's name.
 */
export function sourceField(name: string, field: string): string {
  if (field === "(root)") return name;
  return name === CONFIG_VAR ? `${name}.${field}` : `${name}: ${field}`;
}

/** The configuration from its one source, validated, each issue named as the user finds it (`sourceField`). */
export function loadConfig(bundled: BundledConfig | undefined, variable: unknown): ConfigResult {
  const source = configSource(bundled, variable);
  if (!source.ok) return source;
  const parsed = parseConfig(source.raw);
  return parsed.ok ? parsed : { ok: false, issues: parsed.issues.map((issue) => ({ ...issue, field: sourceField(source.name, issue.field) })) };
}

/**
 * Validates raw configuration (an object from `[vars]`, or its JSON text) and applies defaults.
 * Pure: no I/O, so `npm run check-config`, the Worker and tests share it.
 */
export function parseConfig(raw: unknown): ConfigResult {
  let input = raw;
  if (typeof raw === "string") {
    try {
      input = JSON.parse(raw);
    } catch {
      return { ok: false, issues: [{ field: "(root)", message: "is not valid JSON" }] };
    }
  }
  if (input === undefined || input === null) {
    return { ok: false, issues: [{ field: "(root)", message: "is missing" }] };
  }
  const prepared = withPresets(input);
  if (prepared.issues.length) return { ok: false, issues: prepared.issues };
  const parsed = v.safeParse(ConfigSchema, prepared.input);
  const issues = [...(parsed.success ? [] : fieldIssues(parsed.issues)), ...crossFieldIssues(parsed)];
  return parsed.success && !issues.length ? { ok: true, config: parsed.output } : { ok: false, issues };
}

/** One message per field: the first (later checks of a failed field only repeat it). */
function fieldIssues(issues: readonly v.BaseIssue<unknown>[]): ConfigIssue[] {
  const byField = new Map<string, string>();
  for (const issue of issues) {
    const field = v.getDotPath(issue) ?? "(root)";
    if (!byField.has(field)) byField.set(field, plainMessage(issue));
  }
  return [...byField].map(([field, message]) => ({ field, message }));
}

/** Fills issuer presets in; an Amazon issuer also admits `|` in tokens (Amazon's tokens contain it). */
function withPresets(input: unknown): { input: unknown; issues: ConfigIssue[] } {
  if (typeof input !== "object" || input === null || !Array.isArray((input as { issuers?: unknown }).issuers)) return { input, issues: [] };
  const raw = input as { issuers: unknown[]; token?: unknown };
  const issues: ConfigIssue[] = [];
  const issuers = raw.issuers.map((issuer, i) => {
    const applied = applyPreset(issuer);
    if (applied.error) issues.push({ field: `issuers.${i}.preset`, message: applied.error });
    return applied.issuer;
  });
  const amazon = issuers.some((issuer) => (issuer as { preset?: unknown } | null)?.preset === "amazon");
  const token = typeof raw.token === "object" && raw.token !== null ? (raw.token as Record<string, unknown>) : {};
  const withToken = amazon && token.extra_characters === undefined ? { token: { ...token, extra_characters: "|" } } : {};
  return { input: { ...raw, issuers, ...withToken }, issues };
}

/** Valibot's wording for the two commonest mistakes, said plainly. */
function plainMessage(issue: v.BaseIssue<unknown>): string {
  if (issue.expected === "never") return "is not a known field (check the spelling against the README)";
  if (issue.received === "undefined" && issue.expected?.startsWith('"')) return "is required";
  return issue.message;
}

/** One line per issue, for logs and the CLI. Never includes values, only field names. */
export const formatIssues = (issues: readonly ConfigIssue[]) => issues.map((i) => `${i.field}: ${i.message}`);
