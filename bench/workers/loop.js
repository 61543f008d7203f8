// The in-isolate rows of `npm run bench` (bench/lib/isolate-loop.mjs): wraps one bench Worker (TARGET, set
// by the bundler) and calls its `fetch` `n` times in a row per incoming request, each with a fresh request
// carrying the token, with the origin replaced by an immediate answer (`fetch` of this isolate). No sockets,
// no load generator: the CPU workerd spends per iteration is read from /proc from outside, with far less
// noise than throughput. What every row does alike (this loop, the stubbed origin) cancels in the overheads.
import target from "TARGET";

globalThis.fetch = async () => new Response("ok");

export default {
  async fetch(request, env, ctx) {
    const n = Number(new URL(request.url).searchParams.get("n") ?? 1);
    const authorization = `Bearer ${request.headers.get("x-token")}`;
    let status = 0;
    for (let i = 0; i < n; i++) {
      const response = await target.fetch(new Request("https://api.bench.example/v1/items/42", { headers: { authorization, accept: "application/json" } }), env, ctx);
      status = response.status;
      await response.arrayBuffer();
    }
    return new Response(String(status));
  },
};
