import { env, SELF } from "cloudflare:test";
import { inject, it, expect } from "vitest";
it("reaches loopback", async () => {
  const port = inject("fixturePort" as never) as number;
  const r = await fetch(`http://127.0.0.1:${port}/x`);
  expect(await r.json()).toEqual({ url: "/x" });
  expect((env as unknown as {TEST_PORT:number}).TEST_PORT).toBe(port);
  expect(await (await SELF.fetch("http://x/")).text()).toBe("ok");
});
