import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load";
import sixty from "../../scripts/fixtures/portcullis.config.60-routes.json";

/**
 * The Worker's choice of configuration (src/worker.ts, and check-config at build): the file bundled at build
 * time (portcullis.config.json) or the PORTCULLIS_CONFIG var, never both; the bundled file validated again
 * at start, fail closed, its issues named by the file.
 */

const minimal = {
  issuers: [{ issuer: "https://issuer.test/", audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
  routes: [{ name: "read", path: "/v1/**", scopes: ["read"] }],
};
const file = (config: unknown, name = "portcullis.config.json") => ({ file: name, config });

function issuesOf(result: ReturnType<typeof loadConfig>): string[] {
  if (result.ok) throw new Error("expected the configuration to be refused");
  return result.issues.map((issue) => `${issue.field}: ${issue.message}`);
}

describe("configuration file (bundled) or var", () => {
  it("a bundled 60-route file (3 issuers, 4 claim headers, resource metadata) is accepted", () => {
    const result = loadConfig(file(sixty), undefined);
    if (!result.ok) throw new Error(issuesOf(result).join("\n"));
    expect(result.config.routes).toHaveLength(60);
    expect(result.config.issuers).toHaveLength(3);
    expect(Object.keys(result.config.forward.claim_headers)).toHaveLength(4);
  });

  it("the file and the var together are refused, naming both, whichever is valid", () => {
    for (const [bundled, variable] of [
      [file(minimal), minimal],
      [file(minimal), JSON.stringify(minimal)],
      [file(minimal), ""],
      [file(sixty, "portcullis.config.staging.json"), { realm: "left over" }],
    ] as const) {
      expect(issuesOf(loadConfig(bundled, variable))).toEqual([
        `PORTCULLIS_CONFIG: is set, and so is the configuration file ${bundled.file}: configure one of them, not both (remove the var, or the file)`,
      ]);
    }
  });

  it("a bundled file that skipped the build check fails closed, its fields named by the file", () => {
    const bad = { ...minimal, routes: [...minimal.routes, { path: "/v1/%61dmin", access: "sometimes" }] };
    const issues = issuesOf(loadConfig(file(bad), undefined));
    expect(issues).toContain('portcullis.config.json: routes.1.access: must be token, optional, public or deny');
    expect(issuesOf(loadConfig(file([]), undefined))[0]).toMatch(/^portcullis\.config\.json: /);
    expect(issuesOf(loadConfig(file(null), undefined))).toEqual(["portcullis.config.json: is missing"]);
  });

  it("without a bundled file the var is used as before, its fields named by the var", () => {
    expect(loadConfig(undefined, minimal).ok).toBe(true);
    expect(loadConfig(undefined, JSON.stringify(minimal)).ok).toBe(true);
    expect(issuesOf(loadConfig(undefined, undefined))).toEqual(["PORTCULLIS_CONFIG: is missing"]);
    expect(issuesOf(loadConfig(undefined, { ...minimal, routes: [] }))).toEqual(["PORTCULLIS_CONFIG.routes: must list at least one route"]);
  });
});
