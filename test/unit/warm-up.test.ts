import { afterEach, describe, expect, it, vi } from "vitest";
import { warmUp } from "../../src/pipeline/warm-up";

/**
 * The start-up warm-up (pipeline/warm-up.ts) must really run the request path it is there to compile: if
 * its fixtures, its configuration or its stand-in for the KV-stored key set drift from what the gate
 * accepts, it would silently do nothing and the first request would pay again.
 */
describe("warm-up at isolate start", () => {
  afterEach(() => vi.restoreAllMocks());

  it("verifies the fixed token from a KV-stored key set, then serves it from the token cache: two allowed checks", async () => {
    expect(await warmUp()).toBe(2);
  });

  it("writes no log line and makes no request", async () => {
    const log = vi.spyOn(console, "log");
    const fetch = vi.spyOn(globalThis, "fetch");
    await warmUp();
    expect(log).not.toHaveBeenCalled();
    expect(fetch).not.toHaveBeenCalled();
  });
});
