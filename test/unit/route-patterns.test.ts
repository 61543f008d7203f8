import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load";
import type { PortcullisConfig } from "../../src/config/schema";
import { pathPolicy } from "../../src/policy/path";
import { compileRoutes, matchRoute } from "../../src/policy/routes";

const ISSUERS = [{ issuer: "https://issuer.test/", audiences: ["a"], jwks_uri: "https://issuer.test/jwks" }];
type Paths = PortcullisConfig["paths"];

function parse(routes: PortcullisConfig["routes"], paths: Paths = {}) {
  return parseConfig({ issuers: ISSUERS, routes, paths });
}

/** The issues as `field: message` lines (empty when the configuration is valid). */
function issues(path: string, paths: Paths = {}): string[] {
  const parsed = parse([{ path: "/ok", access: "public" }, { path }], paths);
  return parsed.ok ? [] : parsed.issues.map((issue) => `${issue.field}: ${issue.message}`);
}

describe("T-I11 a route pattern that can never match is a configuration error naming the field", () => {
  it.each([
    // escapes canonicalization decodes, and lower-case hex: the message says what to write
    ["/%61dmin", 'segment 1 "%61dmin" is not canonical: write "admin"'],
    ["/v1/items%3Apurge", 'segment 2 "items%3Apurge" is not canonical: write "items:purge"'],
    ["/v1/users/%40me", 'segment 3 "%40me" is not canonical: write "@me"'],
    ["/a/%21%2A%2B%2C%3D%5B%5D%7C", 'segment 2 "%21%2A%2B%2C%3D%5B%5D%7C" is not canonical: write "!*+,=[]|"'],
    ["/caf%c3%a9", 'segment 1 "caf%c3%a9" is not canonical: write "caf%C3%A9"'],
    ["/a%2e", 'segment 1 "a%2e" can never match: a segment ending in "." is refused'],
    // raw characters that are never raw in a canonical path
    ["/a b", 'segment 1 "a b" is not canonical: write "a%20b"'],
    ['/a"b', 'segment 1 "a\\"b" is not canonical: write "a%22b"'],
    ["/x/{id}", 'segment 2 "{id}" is not canonical: write "%7Bid%7D"'],
    ["/café", 'segment 1 "café" is not canonical: write "caf%C3%A9"'],
    ["/a^b", 'segment 1 "a^b" is not canonical: write "a%5Eb"'],
    // escapes that are always refused, and raw characters that stand for them
    ["/a%2Fb", 'segment 1 "a%2Fb" can never match: requests with an encoded /'],
    ["/a%5Cb", "can never match: requests with an encoded /"],
    ["/a%25", "can never match: requests with an encoded /"],
    ["/a%00", "can never match: requests with an encoded /"],
    ["/a%3F", "can never match: requests with an encoded /"],
    ["/a%23", "can never match: requests with an encoded /"],
    ["/a?b", "can never match: requests with an encoded /"],
    ["/a#b", "can never match: requests with an encoded /"],
    ["/a\\b", "can never match: requests with an encoded /"],
    ["/a%C0%AF", 'segment 1 "a%C0%AF" can never match: its escapes are not UTF-8'],
    ["/a%zz", "can never match: a % must start an escape"],
    // `;` while semicolons are refused; empty and dot segments
    ["/a;b", 'segment 1 "a;b" can never match: ";" is refused while paths.semicolons = "reject"'],
    ["/a%3Bb", 'segment 1 "a%3Bb" can never match: ";" is refused while paths.semicolons = "reject"'],
    ["/a//b", 'segment 2 "" is empty: a canonical path never has an empty segment'],
    ["//a", 'segment 1 "" is empty'],
    ["/a/./b", 'segment 2 "." can never match: dot segments'],
    ["/a/..", 'segment 2 ".." can never match: dot segments'],
    // T-I12: a trailing-dot segment while trailing dots are refused
    ["/admin.", 'segment 1 "admin." can never match: a segment ending in "." is refused while paths.trailing_dots = "reject"'],
    ["/admin./x", 'segment 1 "admin." can never match: a segment ending in "."'],
    ["/a/:9", 'segment 2 ":9" is not a parameter name'],
    ["/a/**/b", 'segment 2 "**" is allowed only as the last segment'],
  ])("%s", (path, message) => {
    const found = issues(path);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^routes\.1\.path: /);
    expect(found[0]).toContain(message);
  });

  it("the same literals are fine where the options let them match", () => {
    expect(issues("/a;b", { semicolons: "allow" })).toEqual([]);
    expect(issues("/a%3Bb", { semicolons: "allow" })).toEqual(['routes.1.path: segment 1 "a%3Bb" is not canonical: write "a;b"']);
    expect(issues("/admin.", { trailing_dots: "allow" })).toEqual([]);
    expect(issues("/a%2e", { trailing_dots: "allow" })).toEqual(['routes.1.path: segment 1 "a%2e" is not canonical: write "a."']);
    // An empty middle segment never occurs in a canonical path, whatever empty_segments says.
    expect(issues("/a//b", { empty_segments: "merge" })[0]).toMatch(/^routes\.1\.path: segment 2 "" is empty/);
  });

  it.each(["/v1/items:purge", "/v1/users/@me", "/files/a%20b", "/caf%C3%A9", "/a[b]|c%5E", "/a!$&'()*+,=", "/admin/", "/x/*", "/x/:id/**", "/", "/**", "/.well-known/x"])(
    "accepts the canonical pattern %s",
    (path) => {
      expect(issues(path)).toEqual([]);
    },
  );
});

describe("T-I12 trailing slash, trailing dots and suffixes against a rule on /admin", () => {
  const table = (paths: Paths = {}) => {
    const parsed = parse(
      [
        { path: "/admin", scopes: ["admin"] },
        { path: "/admin/openapi.json", access: "public" },
        { path: "/files/:name", scopes: ["files"] },
        { path: "/**", access: "public" },
      ],
      paths,
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const policy = pathPolicy(parsed.config.paths);
    const routes = compileRoutes(parsed.config.routes, policy);
    return (path: string) => matchRoute(routes, { method: "GET", host: "x", path }, policy)?.rule.path;
  };

  it("a trailing slash never changes the rule: /admin matches /admin/, and /admin and /admin/ are one pattern", () => {
    const rule = table();
    expect(rule("/admin")).toBe("/admin");
    expect(rule("/admin/")).toBe("/admin");
    expect(rule("/files/a/")).toBe("/files/:name");
    expect(rule("/files/")).toBe("/**"); // a parameter still needs a non-empty segment
    const duplicate = parse([{ path: "/admin", scopes: ["a"] }, { path: "/admin/", scopes: ["b"] }]);
    expect(duplicate.ok ? [] : duplicate.issues.map((i) => i.field)).toEqual(["routes.1"]);
  });

  it("without suffix_match, /admin.json is its own path (the public rule); with it, the stem's rule applies", () => {
    expect(table()("/admin.json")).toBe("/**");
    const rule = table({ suffix_match: true });
    for (const path of ["/admin.json", "/admin.json/", "/admin.tar.gz", "/admin..x"]) expect(rule(path), path).toBe("/admin");
    // a rule naming the whole segment wins; a longer name falls back to its stem
    expect(rule("/admin/openapi.json")).toBe("/admin/openapi.json");
    expect(rule("/admin/openapi.json.bak")).toBe("/**");
    expect(rule("/files/a.json")).toBe("/files/:name");
    // a dot first in the segment is no suffix; a suffix only on the last segment
    expect(rule("/.admin")).toBe("/**");
    expect(rule("/admin.json/x")).toBe("/**");
  });

  it("with suffix_match and case_insensitive, /ADMIN.JSON meets the admin rule", () => {
    expect(table({ suffix_match: true, case_insensitive: true })("/ADMIN.JSON")).toBe("/admin");
    expect(table({ suffix_match: true })("/ADMIN.JSON")).toBe("/**");
  });

  it("with trailing dots allowed and suffix_match, /admin. is matched on its stem", () => {
    expect(table({ trailing_dots: "allow" })("/admin.")).toBe("/**");
    expect(table({ trailing_dots: "allow", suffix_match: true })("/admin.")).toBe("/admin");
  });

  it("paths.trailing_dots and paths.suffix_match are validated, naming the field", () => {
    const bad = parse([{ path: "/a" }], { trailing_dots: "strip", suffix_match: "yes" } as unknown as Paths);
    expect(bad.ok ? [] : bad.issues.map((i) => `${i.field}: ${i.message}`)).toEqual(["paths.trailing_dots: must be reject or allow", expect.stringMatching(/^paths\.suffix_match: /)]);
  });
});
