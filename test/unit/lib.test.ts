import { generateKeyPair, exportJWK } from "jose";
import { describe, expect, it } from "vitest";
import { keyRing } from "../../src/forward/assertion";
import { secretText, serviceFetch } from "../../src/lib/bindings";
import { BoundedMap } from "../../src/lib/bounded-map";
import { sha256Base64, sha256Hex } from "../../src/lib/digest";
import { SecretKeyRings } from "../../src/lib/secret-keys";
import { GateError } from "../../src/errors/errors";

/** The shared helpers of src/lib/, each on its own (the stages using them are tested through the gate). */

describe("BoundedMap", () => {
  it("drops the least recently used entry when full; get and set count as a use, has does not", () => {
    const map = new BoundedMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    expect(map.get("a")).toBe(1); // b is now the least recently used
    expect(map.has("b")).toBe(true); // and a membership test does not change that
    map.set("c", 3);
    expect([map.has("a"), map.has("b"), map.has("c")]).toEqual([true, false, true]);
    map.set("a", 4); // setting an existing key replaces it without evicting another
    expect(map.size).toBe(2);
    expect(map.get("a")).toBe(4);
    map.set("d", 5);
    expect([map.has("a"), map.has("c"), map.has("d")]).toEqual([true, false, true]);
  });

  it("never holds more than its limit, whatever is added", () => {
    const map = new BoundedMap<number, number>(100);
    for (let i = 0; i < 10_000; i++) map.set(i % 7 === 0 ? 0 : i, i);
    expect(map.size).toBe(100);
    expect(map.has(0)).toBe(true); // refreshed every seventh set
    expect(map.has(9_999)).toBe(true);
  });
});

describe("digests", () => {
  it("are SHA-256 in the encodings stored names and cache keys depend on", async () => {
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(await sha256Base64("")).toBe("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    expect(await sha256Hex("portcullis")).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("bindings", () => {
  it("a secret is non-empty text; a service has a fetch", () => {
    expect([secretText("s"), secretText(""), secretText(5), secretText(undefined)]).toEqual(["s", undefined, undefined, undefined]);
    expect(serviceFetch(undefined)).toBeUndefined();
    expect(serviceFetch({ fetch: "no" })).toBeUndefined();
    const service = { calls: 0, fetch(this: { calls: number }) { this.calls++; return Promise.resolve(new Response("ok")); } };
    const fetcher = serviceFetch(service)!;
    void fetcher("https://x.test/");
    expect(service.calls).toBe(1); // called on the binding itself
  });
});

describe("SecretKeyRings", () => {
  const errors = { missing: () => new Error("missing"), invalid: () => new Error("invalid") };

  it("names a missing secret, an unparsable one and a refused one with the caller's errors, never echoing the secret", async () => {
    const rings = new SecretKeyRings<number>(errors);
    const build = async () => 1;
    await expect(rings.load(undefined, build)).rejects.toThrow("missing");
    await expect(rings.load("", build)).rejects.toThrow("missing");
    for (const secret of ["{not json", "null", "5"]) await expect(rings.load(secret, build)).rejects.toThrow(/^invalid$/);
    await expect(rings.load('{"d":"SECRET"}', async () => { throw new Error('bad key {"d":"SECRET"}'); })).rejects.toThrow(/^invalid$/);
  });

  it("parses one JWK or a key set, once per secret text", async () => {
    const rings = new SecretKeyRings<string[]>(errors);
    let builds = 0;
    const build = async (jwks: { kid?: string }[]) => (builds++, jwks.map((jwk) => jwk.kid ?? "-"));
    expect(await rings.load('{"kid":"a"}', build)).toEqual(["a"]);
    expect(await rings.load('{"keys":[{"kid":"a"},{"kid":"b"}]}', build)).toEqual(["a", "b"]);
    expect(await rings.load('{"kid":"a"}', build)).toEqual(["a"]);
    expect(builds).toBe(2);
  });

  it("the assertion key ring keeps its own reasons", async () => {
    const reason = (promise: Promise<unknown>) => promise.then(() => "ok", (error: GateError) => error.reason);
    expect(await reason(keyRing(undefined))).toBe("assertion_key_missing");
    expect(await reason(keyRing('{"keys":[]}'))).toBe("assertion_key_invalid");
    const { publicKey } = await generateKeyPair("EdDSA", { extractable: true });
    expect(await reason(keyRing(JSON.stringify(await exportJWK(publicKey))))).toBe("assertion_key_invalid"); // not a private key
  });
});
