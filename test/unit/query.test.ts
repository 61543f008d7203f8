import { describe, expect, it } from "vitest";
import { forwardedQuery, isMethodOverrideParam, withoutParams } from "../../src/forward/query";

/** The forwarded query: whole pairs dropped by decoded name, every other byte as sent. */

const dropToken = (search: string) => withoutParams(search, (name) => name === "access_token");

describe("T-I16 removing access_token keeps every other byte of the query", () => {
  it.each([
    ["?access_token=t", ""],
    ["?a=%20b&access_token=t&c=d+e", "?a=%20b&c=d+e"],
    ["?a=1+2&b=%2B&access_token=t", "?a=1+2&b=%2B"],
    ["?access_token=t&a=&b", "?a=&b"],
    ["?a=1&access_token=t&a=2&a=1", "?a=1&a=2&a=1"],
    ["?a=1&&access_token=t&&b=2", "?a=1&&&b=2"],
    ["?a=1&&b=2", "?a=1&&b=2"],
    ["?access%5Ftoken=t&x=1", "?x=1"],
    ["?access%5ftoken=t&x=1", "?x=1"],
    ["?%61ccess_token=t&x=%7E", "?x=%7E"],
    ["?access_token&k", "?k"],
    ["?access_token=&k=", "?k="],
    ["?n=%C3%A9%E2%82%AC&access_token=t&bad=%ZZ%&u=%FF", "?n=%C3%A9%E2%82%AC&bad=%ZZ%&u=%FF"],
    ["?access_token=t&access_token=u", ""],
    ["?x=1&", "?x=1&"],
    ["?access_token=t&", ""],
    ["?a=b=c&access_token=t;x=1", "?a=b=c"],
  ])("T-I16 %s -> %j", (search, expected) => {
    expect(dropToken(search)).toBe(expected);
  });

  it("T-I16 names that only look alike are kept: other case, `+` for `_`, a `?` inside the query", () => {
    for (const search of ["?Access_Token=t", "?access+token=t", "?access%20token=t", "??access_token=t", "?access_token%00=t", "?xaccess_token=t", "?access_tokens=t"]) {
      expect(dropToken(search)).toBe(search);
    }
    expect(dropToken("")).toBe("");
  });

  it("T-I16 nothing dropped: the very same string (not re-serialized)", () => {
    const search = "?q=a%20b+c&r=%2b&s&t=&&u=%7e";
    expect(dropToken(search)).toBe(search);
    expect(new URLSearchParams(search).toString()).not.toBe(search.slice(1)); // what the old re-serialization did
  });
});

describe("T-I15 query-string method overrides", () => {
  it("T-I15 override names, decoded as URLSearchParams decodes them, any case", () => {
    for (const name of ["_method", "_METHOD", "_Method", "x-http-method-override", "X-HTTP-Method-Override", "x_http_method_override", "x-http-method", "X-Method-Override", "x_method_override"]) {
      expect(isMethodOverrideParam(name)).toBe(true);
    }
    for (const name of ["method", "_methods", "x-http-methods", "my_method", "_method_name", "x-method", "x-http-method-override2"]) {
      expect(isMethodOverrideParam(name)).toBe(false);
    }
  });

  it("T-I15 PHP's reading of names counts: `.method`, ` _method`, `_method[]`", () => {
    for (const name of [".method", " _method", "  _method", "_method[]", "_method[x]", "x.http.method.override"]) expect(isMethodOverrideParam(name)).toBe(true);
  });

  it("T-I15 PHP cuts a name at its first NUL and reads an unclosed `[` as `_`", () => {
    for (const name of ["_method\0", "_method\0x", " _method\0[]", ".method\0", "x-http-method-override\0", "x-http-method[override", "_method["]) expect(isMethodOverrideParam(name)).toBe(true);
    for (const name of ["\0_method", "_meth\0od", "x_method\0"]) expect(isMethodOverrideParam(name)).toBe(false);
  });

  it("T-I16 a parameter some origin reads as access_token, but not spelled exactly so, is flagged in every mode", () => {
    for (const name of ["access.token", "access%20token", "+access_token", "access_token[]", "access_token%5B%5D", "access_token%00", "access%5Btoken", "Access_Token", "ACCESS%5FTOKEN"]) {
      for (const strip of [true, false]) expect([name, forwardedQuery(`?a=1&${name}=t`, strip).tokenLookalike]).toEqual([name, true]);
    }
    for (const search of ["?access_token=t", "?access_tokens=t", "?my_access_token=t", "?access-token=t", "?a=access_token", "?x=1;access_tokens=2"]) {
      expect([search, forwardedQuery(search, true).tokenLookalike]).toEqual([search, false]);
    }
  });

  it.each([
    ["?_method=DELETE", "", true],
    ["?a=%20&_method=DELETE&b=+", "?a=%20&b=+", true],
    ["?_%6Dethod=DELETE&x=1", "?x=1", true],
    ["?%5Fmethod=PUT", "", true],
    ["?_METHOD=delete&_method=put&keep=1", "?keep=1", true],
    ["?x-http-method-override=DELETE&X-HTTP-METHOD=PUT&x%2Dmethod%2Doverride=PATCH&k", "?k", true],
    ["?%2Emethod=DELETE&k=%7E", "?k=%7E", true],
    ["?_method", "", true],
    ["?a=1;_method=DELETE&b=2", "?b=2", true],
    ["?a=1;%5Fmethod=DELETE", "", true],
    ["?a=1;b=2&c=3", "?a=1;b=2&c=3", false],
    ["?method=DELETE&a=1", "?method=DELETE&a=1", false],
    ["?a=_method", "?a=_method", false],
    ["", "", false],
  ])("T-I15 %s -> %j (override: %s)", (search, expected, override) => {
    expect(forwardedQuery(search, false)).toEqual({ search: expected, methodOverride: override, tokenLookalike: false });
  });

  it("T-I15/T-I16 one pass: overrides always, access_token only when stripping", () => {
    expect(forwardedQuery("?access_token=t&_method=DELETE&a=%20", true)).toEqual({ search: "?a=%20", methodOverride: true, tokenLookalike: false });
    expect(forwardedQuery("?access_token=t&_method=DELETE&a=%20", false)).toEqual({ search: "?access_token=t&a=%20", methodOverride: true, tokenLookalike: false });
    expect(forwardedQuery("?access_token=t&a=%20", true)).toEqual({ search: "?a=%20", methodOverride: false, tokenLookalike: false });
    // One pair carrying both (for parsers that split on `;`): still seen as an override.
    expect(forwardedQuery("?access_token=t;_method=DELETE&k", true)).toEqual({ search: "?k", methodOverride: true, tokenLookalike: false });
    expect(forwardedQuery("?k=1;access_token=t&j", true)).toEqual({ search: "?j", methodOverride: false, tokenLookalike: true });
  });
});
