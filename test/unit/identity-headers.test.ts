import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeHeaderValue, type HeaderKind } from "../../src/forward/headers";

/**
 * T-I9: identity header values are injective. The decoding below is the one README documents for origins,
 * written independently of the encoder: if the encoder ever sent two values as one text, or a text the
 * reader takes for the wrong form, a round trip fails.
 */

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function decode(text: string, kind: HeaderKind): unknown {
  if (kind === "string") return text.startsWith('"') ? JSON.parse(text) : text;
  const json = /^["{[]/.test(text) || JSON_NUMBER.test(text) || text === "true" || text === "false" || text === "null";
  return json ? JSON.parse(text) : text;
}

const NO_LIMIT = 1_000_000;
const encode = (value: unknown, kind: HeaderKind) => encodeHeaderValue(value, kind, NO_LIMIT);

/** JSON numbers have one zero: `-0` is sent as `0` (JSON.stringify), equal under `===` (README). */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** Strings an attacker would pick: JSON texts, quoted or padded text, escapes spelled out, any code unit. */
const trickyString = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({ unit: fc.constantFrom('"', " ", "\\", "u", "0", "e", "{", "[", "1", "-", ".", "a", "\t", "\r", "\n", "é", "\ud800") }),
  fc.jsonValue().map((value) => JSON.stringify(value)),
  fc.jsonValue().map((value) => ` ${JSON.stringify(value)}`),
  fc.constantFrom("", " ", " x", '" x"', '"x"', '""', "true", "false", "null", "-0", "1e3", "01", "1.", "+1", "Zoë", '"Zo\\u00eb"', "{}", "[]", "a\r\nb"),
);

const anyValue = fc.oneof(fc.jsonValue(), fc.jsonValue({ stringUnit: "binary" }), trickyString);

/** Pairs worth comparing: unrelated values, and a value beside the string spelling its encoding or its JSON. */
const pairs = <T>(values: fc.Arbitrary<T>, kind: HeaderKind) =>
  fc.oneof(
    fc.tuple(values, values),
    values.map((value) => [value, encode(value, kind) ?? ""] as const),
    values.map((value) => [value, JSON.stringify(value) ?? ""] as const),
    values.map((value) => [value, (encode(value, kind) ?? "").trim() === "" ? " " : ` ${encode(value, kind)}`] as const),
  );

/** What a header can carry without being changed by Headers (no edge whitespace) or splitting (CR/LF). */
function expectHeaderSafe(encoded: string | undefined) {
  expect(encoded).toBeDefined();
  expect(encoded).toMatch(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/);
  const headers = new Headers();
  headers.set("x-auth-v", encoded!);
  expect(headers.get("x-auth-v")).toBe(encoded);
}

describe("T-I9 identity header encoding", () => {
  it("T-I9 claim headers: every JSON value encodes header-safe and the documented decoding recovers it (property)", () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        const encoded = encode(value, "claim");
        expectHeaderSafe(encoded);
        expect(decode(encoded!, "claim")).toEqual(asJson(value));
      }),
      { numRuns: 2_000 },
    );
  });

  it("T-I9 claim headers: two different JSON values never share an encoding (property)", () => {
    fc.assert(
      fc.property(pairs(anyValue, "claim"), ([a, b]) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(encode(a, "claim")).not.toBe(encode(b, "claim"));
      }),
      { numRuns: 2_000 },
    );
  });

  it("T-I9 string headers (sub, client-id, scope, issuer): round trip and no two strings share an encoding (property)", () => {
    fc.assert(
      fc.property(pairs(trickyString, "string"), ([a, b]) => {
        for (const value of [a, b]) {
          const encoded = encode(value, "string");
          expectHeaderSafe(encoded);
          expect(decode(encoded!, "string")).toBe(value);
        }
        if (a !== b) expect(encode(a, "string")).not.toBe(encode(b, "string"));
      }),
      { numRuns: 2_000 },
    );
  });

  it.each([
    ["1", 1],
    ["true", true],
    ["null", null],
    ["-1.5", -1.5],
    ["1000", 1e3],
    ['{"a":1}', { a: 1 }],
    ["[1]", [1]],
    ['" x"', " x"],
    ['"Zo\\u00eb"', "Zoë"],
    ['""', ""],
  ])("T-I9 claim header: the text %j and the value %j arrive differently", (text, value) => {
    expect(encode(text, "claim")).not.toBe(encode(value, "claim"));
    expect(decode(encode(text, "claim")!, "claim")).toBe(text);
    expect(decode(encode(value, "claim")!, "claim")).toEqual(value);
  });

  it("T-I9 plain text travels verbatim; a string header keeps JSON-looking text verbatim, a claim header does not", () => {
    expect(encode("user-123", "string")).toBe("user-123");
    expect(encode("user-123", "claim")).toBe("user-123");
    expect(encode("1", "string")).toBe("1");
    expect(encode("1", "claim")).toBe('"1"');
    expect(encode("{x", "claim")).toBe('"{x"');
    expect(encode('"x"', "string")).toBe('"\\"x\\""');
    expect(encode("", "string")).toBe('""');
    expect(encode("Zoë", "string")).toBe('"Zo\\u00eb"');
    expect(encode(1, "string")).toBeUndefined(); // a string header never carries another type
  });

  it("T-I9 max_header_bytes applies to the encoded form", () => {
    expect(encode("a".repeat(64), "string")).toBe("a".repeat(64));
    expect(encodeHeaderValue("a".repeat(64), "string", 64)).toBe("a".repeat(64));
    expect(encodeHeaderValue("a".repeat(65), "string", 64)).toBeUndefined();
    expect(encodeHeaderValue("é".repeat(10), "claim", 61)).toBeUndefined(); // 62 bytes once escaped
    expect(encodeHeaderValue("é".repeat(10), "claim", 62)).toBe(`"${"\\u00e9".repeat(10)}"`);
  });
});
