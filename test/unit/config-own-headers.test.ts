import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import { reservedHeaderReason } from "../../src/forward/headers";

/** The headers the gate sets itself (assertion, shared secret) are configuration errors when they clash (I17). */

const base = {
  issuers: [{ issuer: "https://issuer.test/", audiences: ["https://api.test"], jwks_uri: "https://issuer.test/jwks" }],
  routes: [{ path: "/v1/**", scopes: ["read"] }],
};
const ASSERTION = { issuer: "https://gate.test", audience: "https://origin.test", signing_keys: "ASSERTION_KEYS" };

function issuesOf(forward: Record<string, unknown>): Record<string, string> {
  const result = parseConfig({ ...base, forward });
  return result.ok ? {} : Object.fromEntries(result.issues.map((issue) => [issue.field, issue.message]));
}

describe("T-I17 the gate's own headers", () => {
  it("T-I17 inside header_prefix (default and custom prefix): an error naming the field", () => {
    expect(issuesOf({ assertion: { ...ASSERTION, header: "x-auth-assertion" } })).toEqual({
      "forward.assertion.header": 'must not start with the identity header prefix "x-auth-"',
    });
    expect(issuesOf({ shared_secret: { header: "x-auth-secret", secret: "S" } })).toEqual({
      "forward.shared_secret.header": 'must not start with the identity header prefix "x-auth-"',
    });
    expect(issuesOf({ header_prefix: "x-id-", assertion: { ...ASSERTION, header: "x-id-sig" }, shared_secret: { header: "x-id-", secret: "S" } })).toEqual({
      "forward.assertion.header": 'must not start with the identity header prefix "x-id-"',
      "forward.shared_secret.header": 'must not start with the identity header prefix "x-id-"',
    });
    // Outside the custom prefix, the default prefix's names are just other headers.
    expect(issuesOf({ header_prefix: "x-id-", assertion: { ...ASSERTION, header: "x-auth-assertion" } })).toEqual({});
  });

  it("T-I17 the same header for both: an error naming shared_secret.header", () => {
    expect(issuesOf({ assertion: { ...ASSERTION, header: "x-origin-proof" }, shared_secret: { header: "x-origin-proof", secret: "S" } })).toEqual({
      "forward.shared_secret.header": "must differ from forward.assertion.header",
    });
    // The defaults differ, so configuring both without names is fine.
    expect(issuesOf({ assertion: ASSERTION, shared_secret: { secret: "S" } })).toEqual({});
  });

  it.each([
    ["authorization", "is a credentials header"],
    ["proxy-authorization", "is a credentials header"],
    ["cookie", "is a credentials header"],
    ["connection", "is a hop-by-hop or message-framing header"],
    ["keep-alive", "is a hop-by-hop or message-framing header"],
    ["te", "is a hop-by-hop or message-framing header"],
    ["trailer", "is a hop-by-hop or message-framing header"],
    ["transfer-encoding", "is a hop-by-hop or message-framing header"],
    ["upgrade", "is a hop-by-hop or message-framing header"],
    ["proxy-connection", "is a hop-by-hop or message-framing header"],
    ["host", "is a hop-by-hop or message-framing header"],
    ["content-length", "is a hop-by-hop or message-framing header"],
    ["x-http-method-override", "is a header the gate strips or sets for another purpose"],
    ["x-original-url", "is a header the gate strips or sets for another purpose"],
    ["x-forwarded-host", "is a header the gate strips or sets for another purpose"],
  ])("T-I17 %s as either header: %s", (header, message) => {
    expect(issuesOf({ assertion: { ...ASSERTION, header } })).toEqual({ "forward.assertion.header": message });
    expect(issuesOf({ shared_secret: { header, secret: "S" } })).toEqual({ "forward.shared_secret.header": message });
  });

  it("T-I17 ordinary names and the defaults are accepted", () => {
    expect(parseConfig({ ...base, forward: { assertion: ASSERTION } }).ok).toBe(true);
    expect(parseConfig({ ...base, forward: { assertion: { ...ASSERTION, header: "x-gateway-assertion" }, shared_secret: { header: "x-gateway-secret", secret: "S" } } }).ok).toBe(true);
  });
});

describe("T-F1 T-F2 the identity namespace and claim headers never take a header the origin reads for something else", () => {
  it.each(["x-", "content-", "cf-", "sec-", "access-control-", "proxy-", "x-forwarded-", "x-http-", "x-real-", "mcp-", "x-original-"])("T-F2 header_prefix %s: an error naming the field and the header it would claim", (prefix) => {
    const issues = issuesOf({ header_prefix: prefix });
    expect(Object.keys(issues)).toEqual(["forward.header_prefix"]);
    expect(issues["forward.header_prefix"]).toMatch(/^must not be the start of [a-z-]+: the identity namespace is stripped from every request and filled from claims/);
  });

  it.each([
    ["x-http-method-override", "is a header the gate strips or sets for another purpose"],
    ["x-forwarded-prefix", "is a header the gate strips or sets for another purpose"],
    ["x-forwarded-for", "is a header origins read the client's address from"],
    ["x-real-ip", "is a header origins read the client's address from"],
    ["content-type", "is a content header: it tells the origin how to read the body"],
    ["dpop", "is a credentials header"],
  ])("T-F2 %s is reserved: %s", (header, message) => {
    expect(reservedHeaderReason(header)).toBe(message);
  });

  it("T-F2 a claim header inside an accepted prefix that still names a reserved header: an error naming it", () => {
    expect(issuesOf({ header_prefix: "content-x-", claim_headers: { "content-x-tenant": "tid" } })).toEqual({
      "forward.claim_headers.content-x-tenant": "is a content header: it tells the origin how to read the body",
    });
  });

  it("T-F1 ordinary prefixes and claim headers are accepted", () => {
    for (const prefix of ["x-auth-", "x-user-", "x-id-", "x-a-b-", "x-portcullis-"]) expect([prefix, parseConfig({ ...base, forward: { header_prefix: prefix, claim_headers: { [`${prefix}tenant`]: "tid" } } }).ok]).toEqual([prefix, true]);
  });
});

describe("T-I17 forward.assertion.jwks_path is a path the gate can serve", () => {
  it.each([
    ["/a/../k", "is a path no request can have"],
    ["/k/.", "is a path no request can have"],
    ["/.", "is a path no request can have"],
    ["/k.", "is a path no request can have"],
    ["/", "must not be / or under /.well-known/oauth-protected-resource"],
    ["/.well-known/oauth-protected-resource", "must not be / or under /.well-known/oauth-protected-resource"],
    ["/.well-known/oauth-protected-resource/keys", "must not be / or under /.well-known/oauth-protected-resource"],
  ])("%s: %s", (path, message) => {
    expect(issuesOf({ assertion: { ...ASSERTION, jwks_path: path } })["forward.assertion.jwks_path"]).toMatch(new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
  });

  it("the default and ordinary paths are accepted", () => {
    for (const path of ["/.well-known/portcullis-keys.json", "/keys/gate.json"]) expect(issuesOf({ assertion: { ...ASSERTION, jwks_path: path } })).toEqual({});
  });
});
