import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig, RouteConfig } from "../../src/config/schema";

const ISSUERS = [{ issuer: "https://issuer.test/", audiences: ["a"], jwks_uri: "https://issuer.test/jwks" }];

/** Route rules with defaults applied, exactly as the gate gets them. */
export function routeConfigs(routes: PortcullisConfig["routes"]): RouteConfig[] {
  const parsed = parseConfig({ issuers: ISSUERS, routes });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.config.routes;
}

export function issuesFor(routes: PortcullisConfig["routes"]): string[] {
  const parsed = parseConfig({ issuers: ISSUERS, routes });
  return parsed.ok ? [] : parsed.issues.map((issue) => `${issue.field}: ${issue.message}`);
}

