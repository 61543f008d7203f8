import { describe, expect, it } from "vitest";
import { base62Checksum, hasGithubChecksum, hasProviderFormat } from "../../src/validate/token-format";
import { CallBudget, rateLimitWait, RecentKeys } from "../../src/validate/upstream-limits";

/** T-I4 pieces: provider token formats, the call budget, and reading an upstream's rate-limit answer. */

describe("T-I4 provider token formats", () => {
  it("T-I4 the checksum is CRC-32 (IEEE) in six zero-padded base62 digits, 0-9A-Za-z", () => {
    // CRC-32 check value of "123456789" is 0xCBF43926 (the CRC catalogue's test vector); "" gives 0.
    expect(base62Checksum("123456789")).toBe("3jZRME");
    expect(base62Checksum("")).toBe("000000");
    expect(base62Checksum("a".repeat(30))).toBe("1yLcDB");
  });

  it("T-I4 a classic GitHub token is prefix + 30 base62 + the checksum of those 30", () => {
    const random = "a".repeat(30);
    for (const prefix of ["gho_", "ghu_", "ghp_", "ghs_", "ghr_"]) expect(hasGithubChecksum(`${prefix}${random}1yLcDB`)).toBe(true);
    expect(hasGithubChecksum(`gho_${random}1yLcDC`)).toBe(false); // last digit off
    expect(hasGithubChecksum(`gho_${"a".repeat(29)}b1yLcDB`)).toBe(false); // random part changed
    expect(hasGithubChecksum(`gho_${random}1ylcdb`)).toBe(false); // base62 is case-sensitive
    expect(hasGithubChecksum(`gha_${random}1yLcDB`)).toBe(false); // unknown prefix
    expect(hasGithubChecksum(`gho_${random}1yLcDB `)).toBe(false);
  });

  it("T-I4 prefixes without a documented format pass; other flavors are not format-checked", () => {
    expect(hasProviderFormat("github", "custom_anything")).toBe(true);
    expect(hasProviderFormat("google", "1//refresh-looking")).toBe(true);
    expect(hasProviderFormat("amazon", "Atza|whatever")).toBe(true);
    expect(hasProviderFormat("rfc7662", "gho_short")).toBe(true);
    expect(hasProviderFormat("github", "gho_short")).toBe(false);
    expect(hasProviderFormat("google", "ya29.short")).toBe(false);
  });
});

describe("T-I4 call budget (token bucket)", () => {
  it("T-I4 holds max calls, refills continuously, and says how long until the next one", () => {
    const budget = new CallBudget(60);
    const t = 1_000_000;
    for (let i = 0; i < 60; i++) expect(budget.take(t)).toBe(0);
    expect(budget.take(t)).toBe(1);
    expect(budget.take(t + 500)).toBe(1);
    expect(budget.take(t + 1_000)).toBe(0);
    expect(budget.take(t + 1_000)).toBe(1);
    // Never more than the maximum, however long the pause.
    const later = t + 86_400_000;
    for (let i = 0; i < 60; i++) expect(budget.take(later)).toBe(0);
    expect(budget.take(later)).toBe(1);
    // A clock going backwards refills nothing.
    expect(budget.take(t)).toBe(1);
  });

  it("T-I4 a slow budget reports whole seconds", () => {
    const budget = new CallBudget(1);
    expect(budget.take(0)).toBe(0);
    expect(budget.take(0)).toBe(60);
    expect(budget.take(30_000)).toBe(30);
  });

  it("T-I4 the set of known-active keys is bounded, oldest out first", () => {
    const keys = new RecentKeys(2);
    keys.add("a");
    keys.add("b");
    keys.add("a"); // refreshed
    keys.add("c");
    expect([keys.has("a"), keys.has("b"), keys.has("c")]).toEqual([true, false, true]);
  });
});

describe("T-I4 reading a rate-limit answer", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const headers = (values: Record<string, string>) => new Headers(values);

  it.each([
    [429, {}, 60],
    [429, { "retry-after": "30" }, 30],
    [429, { "retry-after": " 7 " }, 7],
    [429, { "retry-after": new Date(now + 120_000).toUTCString() }, 120],
    [429, { "retry-after": new Date(now - 120_000).toUTCString() }, 1],
    [429, { "retry-after": "999999" }, 3600],
    [429, { "retry-after": "soon" }, 60],
    [403, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(now / 1000 + 300) }, 300],
    [403, { "x-ratelimit-remaining": "0" }, 60],
    [403, { "retry-after": "15", "x-ratelimit-remaining": "12" }, 15],
    [429, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(now / 1000 + 10), "retry-after": "40" }, 40],
  ])("T-I4 %i %j -> wait %i s", (status, values, wait) => {
    expect(rateLimitWait(status, headers(values), now)).toBe(wait);
  });

  it.each([
    [403, {}],
    [403, { "x-ratelimit-remaining": "4999" }],
    [401, { "retry-after": "30" }],
    [500, { "retry-after": "30" }],
    [503, {}],
  ])("T-I4 %i %j is not a rate limit", (status, values) => {
    expect(rateLimitWait(status, headers(values), now)).toBeUndefined();
  });
});
