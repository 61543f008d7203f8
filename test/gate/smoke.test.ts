import { describe, expect, it } from "vitest";
import { bearer, mint, originSaw, setup } from "../helpers";

describe("gate smoke", () => {
  it("forwards a valid token with claim headers", async () => {
    const { key, gate } = await setup();
    const ok = await gate.request("/items/1", { headers: bearer(await mint(key)) });
    console.log(JSON.stringify(gate.logs));
    const seen = await originSaw(ok);
    expect(seen.headers["x-auth-sub"]).toBe("user-123");
  });
});
