import { describe, expect, it } from "vitest";
import { GateError } from "../../src/errors/errors";
import { extractBearer } from "../../src/extract/bearer";

/** RFC 6750 2.1 header syntax: what counts as a Bearer credential, and what counts as none. */

const options = { maxLength: 100, allowQuery: false };
const outcome = (authorization: string) => {
  // A stand-in request: a real Headers object cannot hold characters beyond Latin-1 (U+2003...).
  const request = { headers: { get: (name: string) => (name === "authorization" ? authorization : null) }, url: "https://x/a" } as unknown as Request;
  try {
    return extractBearer(request, options) ?? "none";
  } catch (error) {
    return error instanceof GateError ? `${error.code}:${error.reason}` : "crash";
  }
};

/** Every separator but one SP: ASCII controls and blanks, Latin-1 and Unicode spaces, and separators RFC 7230 excludes from tokens. */
const SEPARATORS = ["\t", "  ", "\v", "\f", "\r", "\n", "\x00", "\x1f", "\x7f", "\u00a0", "\u0085", "\u1680", "\u2000", "\u2003", "\u2009", "\u200b", "\u2028", "\u202f", "\u205f", "\u3000", "\ufeff", "\u00e9", "(", ")", ":", ";", "@", "\"", "/", "[", "]", "?", "=", "{", "}", "\\", "<", ">"];

describe("T-I10 Bearer followed by anything but one space", () => {
  it.each(SEPARATORS.map((separator) => [JSON.stringify(separator), separator]))("T-I10 Bearer%s t -> 400 malformed_credentials, never no token", (_, separator) => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      expect(outcome(`${scheme}${separator}token`)).toBe("invalid_request:malformed_credentials");
    }
  });

  it("T-I10 a space then more whitespace, or whitespace before the space, is refused too", () => {
    for (const value of ["Bearer \ttoken", "Bearer \u00a0token", "Bearer\t token", "Bearer\u00a0 token", "Bearer   token"]) {
      expect(outcome(value)).toBe("invalid_request:malformed_credentials");
    }
  });

  it("T-I10 `Bearer` followed by a token character is another scheme: no token", () => {
    for (const value of ["Bearerx t", "Bearer-2 t", "Bearer_t", "Bearer.t", "Bearer1 t", "Bearer! t", "Bearer~t", "Bearer|t", "Bearer+t", "Bearer%20t", "Bearers t"]) {
      expect(outcome(value)).toBe("none");
    }
    for (const value of ["Basic dXNlcg==", "DPoP t", "Beare t", "Token t"]) expect(outcome(value)).toBe("none");
  });

  it("T-I10 exactly one space still reads the token; `Bearer` alone is a credential without a token", () => {
    expect(outcome("Bearer abc.DEF-_~+/==")).toEqual({ token: "abc.DEF-_~+/==", source: "header" });
    expect(outcome("bEaReR t")).toEqual({ token: "t", source: "header" });
    expect(outcome("Bearer")).toBe("invalid_request:malformed_credentials");
    expect(outcome("Bearer ")).toBe("invalid_request:malformed_credentials");
  });
});
