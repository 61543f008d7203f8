import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";

/** `resource_metadata`: one resource (a table) or several (an array of tables), each validated by field. */

const base = {
  issuers: [{ issuer: "https://issuer.test/", audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
  routes: [{ path: "/mcp/**", scopes: ["read"] }],
};
const resource = (url: string) => ({ resource: url, authorization_servers: ["https://issuer.test/"] });

function issuesOf(resource_metadata: unknown): Record<string, string> {
  const result = parseConfig({ ...base, resource_metadata });
  if (result.ok) throw new Error("expected the configuration to be rejected");
  return Object.fromEntries(result.issues.map((issue) => [issue.field, issue.message]));
}

describe("resource_metadata configuration", () => {
  it("accepts one table or an array of tables, kept as written", () => {
    for (const resource_metadata of [resource("https://api.test"), [resource("https://api.test/mcp/a"), resource("https://api.test/mcp/b")]]) {
      const result = parseConfig({ ...base, resource_metadata });
      if (!result.ok) throw new Error(JSON.stringify(result.issues));
      expect(result.config.resource_metadata).toEqual(resource_metadata);
    }
  });

  it("names the field in the form it was written: resource_metadata.resource for a table, resource_metadata.1.resource in an array", () => {
    expect(issuesOf({ ...resource("not a url") })).toEqual({ "resource_metadata.resource": "must be an absolute URL" });
    expect(issuesOf([resource("https://api.test/a"), resource("ftp://x")])).toEqual({ "resource_metadata.1.resource": "must use https (http is allowed only for loopback hosts)" });
    expect(issuesOf([])).toEqual({ resource_metadata: "must list at least one resource" });
    expect(issuesOf({ ...resource("https://api.test"), scope: ["x"] })).toEqual({ "resource_metadata.scope": "is not a known field (check the spelling against the README)" });
    expect(issuesOf([{ ...resource("https://api.test"), scopes_supported: ["a b"] }])).toEqual({ "resource_metadata.0.scopes_supported.0": "must be an RFC 6749 scope token" });
  });

  it("refuses a query or fragment (RFC 9728 1.2), a non-canonical path, and two resources with one path", () => {
    expect(issuesOf(resource("https://api.test/mcp?x=1"))).toEqual({ "resource_metadata.resource": "must have no query or fragment (RFC 9728 section 1.2)" });
    expect(issuesOf(resource("https://api.test/mcp#a"))).toEqual({ "resource_metadata.resource": "must have no query or fragment (RFC 9728 section 1.2)" });
    expect(issuesOf(resource("https://api.test/%6Dcp"))).toEqual({ "resource_metadata.resource": 'has a path that is not canonical: write "/mcp"' });
    expect(issuesOf([resource("https://api.test/a"), resource("https://api.test/a%2Fb")])).toEqual({ "resource_metadata.1.resource": "has a path no request can have (see the canonical path)" });
    expect(issuesOf([resource("https://api.test/mcp"), resource("https://other.test/mcp/")])).toEqual({
      "resource_metadata.1.resource": "has the same path as resource_metadata.0.resource: each resource needs its own path",
    });
  });
});
