import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GateError } from "../../src/errors/errors";
import { canonicalPath, normalizePath } from "../../src/policy/path";
import { compileRoutes, matchRoute } from "../../src/policy/routes";
import { routeConfigs } from "./rules";

const reason = (path: string) => {
  try {
    canonicalPath(path);
    return "ok";
  } catch (error) {
    return error instanceof GateError ? error.reason : "crash";
  }
};

describe("canonical path", () => {
  it.each([
    ["/a/b", "/a/b"],
    ["/", "/"],
    ["/a/", "/a/"],
    ["/%61%62", "/ab"],
    // T-I12: the escapes end in `_`, not `.` (a trailing dot is refused by default).
    ["/a%7e%2D%2e%5f", "/a~-._"],
    // T-I1: every decoded character has one spelling (`%3b` is `;`, refused below).
    ["/v1/items%3apurge", "/v1/items:purge"],
    ["/caf%c3%a9", "/caf%C3%A9"],
  ])("%s -> %s", (input, output) => {
    expect(canonicalPath(input)).toBe(output);
  });

  it.each([
    ["/a%2fb", "path_ambiguous_escape"],
    ["/a%5Cb", "path_ambiguous_escape"],
    ["/a%00", "path_ambiguous_escape"],
    ["/a%252f", "path_ambiguous_escape"],
    ["/%2e%2e/a", "path_dot_segment"],
    ["/a/%2E", "path_dot_segment"],
    ["/a;b", "path_parameters"],
    ["/a%3b", "path_parameters"],
    ["//a", "path_empty_segment"],
    ["/a//b", "path_empty_segment"],
    ["/a%zz", "path_bad_escape"],
    ["/a%", "path_bad_escape"],
    ["a", "path_not_absolute"],
  ])("%s is refused (%s)", (input, expected) => {
    expect(reason(input)).toBe(expected);
  });

  it("its fast path for already-canonical paths agrees with the full rules, for raw and URL-parsed paths (property)", () => {
    const outcome = (run: () => string) => {
      try {
        return run();
      } catch (error) {
        return `throws ${(error as GateError).reason}`;
      }
    };
    // T-I1/T-I12: also escapes of raw characters, raw characters outside the raw set, trailing dots.
    const segment = fc.oneof(
      fc.webSegment(),
      fc.constantFrom("..", ".", "...", ".a", "a.", "%2e", "%41", ";", "a;b", "", "%", "a:b@c", "%3A", "%3a", "a b", '"', "é", "[]^|", "{x}", "\\", "%C0%AF"),
    );
    let fast = 0;
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), fc.boolean(), fc.boolean(), (segments, slash, parse) => {
        const raw = `${slash ? "/" : ""}${segments.join("/")}`;
        const pathname = parse ? new URL(`https://x/${raw}`).pathname : raw;
        for (const options of [undefined, { semicolons: "allow", emptySegments: "merge", trailingDots: "allow" } as const]) {
          const result = outcome(() => canonicalPath(pathname, options));
          expect(result).toBe(outcome(() => normalizePath(pathname, options)));
          if (result === pathname) fast++;
        }
      }),
      { numRuns: 3000 },
    );
    expect(fast).toBeGreaterThan(500); // both kinds of input occur
  });

  it("is idempotent and leaves nothing ambiguous, for arbitrary URL paths (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.webSegment(), fc.constantFrom("..", ".", "%2e", "%2F", "%5c", "%00", "%25", ";", "%41", "")), { maxLength: 8 }), (segments) => {
        const pathname = new URL(`https://x/${segments.join("/")}`).pathname;
        let canonical: string;
        try {
          canonical = canonicalPath(pathname);
        } catch (error) {
          expect(error).toBeInstanceOf(GateError);
          expect((error as GateError).status).toBe(400);
          return;
        }
        expect(canonicalPath(canonical)).toBe(canonical);
        expect(canonical.split("/").slice(1, -1)).not.toContain("");
        expect(canonical).not.toMatch(/%(2F|5C|00|25|2E|3F|23|3A|40)|;|\/\.\.?(\/|$)/i);
        expect(canonical).not.toMatch(/%[0-9A-F]?[a-f]/); // T-I1: upper-case hex only
        // URL parsing of the canonical path changes nothing: the origin sees the same path.
        expect(new URL(`https://x${canonical}`).pathname).toBe(canonical);
      }),
      { numRuns: 2000 },
    );
  });

  it("never forwards what it did not match: the matched route is the route of the forwarded path (property)", () => {
    const routes = compileRoutes(
      routeConfigs([
        { path: "/public/**", access: "public" },
        { path: "/admin/**", scopes: ["admin"] },
        { path: "/items/:id", methods: ["GET"], scopes: ["read"] },
      ]),
    );
    const at = (path: string) => ({ method: "GET", host: "x", path });
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.webSegment(), fc.constantFrom("..", "public", "admin", "items", "%2e%2e", "%61dmin")), { minLength: 1, maxLength: 6 }), (segments) => {
        const pathname = new URL(`https://x/${segments.join("/")}`).pathname;
        let canonical: string;
        try {
          canonical = canonicalPath(pathname);
        } catch {
          return; // refused with 400: nothing forwarded
        }
        const matched = matchRoute(routes, at(canonical));
        // What the origin receives, parsed the way an origin would, matches the same rule.
        const originPath = new URL(`https://origin${canonical}`).pathname;
        expect(matchRoute(routes, at(originPath))).toBe(matched);
        if (matched?.rule.path === "/public/**") expect(originPath === "/public" || originPath.startsWith("/public/")).toBe(true);
        if (matched?.rule.path !== "/admin/**") expect(/^\/admin(\/|$)/.test(originPath)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
