// Row 6. A first Miniflare instance with KV persistence verifies one token (fetching the JWKS and writing it
// to KV), then is disposed. Each repetition then starts a fresh workerd on the same persistence directory and
// times, from here, its first request (a fresh isolate: config parse, KV read, key import, verification,
// forwarding) and a second one for comparison. The issuer's counter shows whether the JWKS was fetched again.
import { rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { ALGS, OUT, PATH } from "./constants.mjs";
import { bearer } from "./fixtures.mjs";
import { say } from "./log.mjs";
import { portcullisConfig } from "./portcullis.mjs";
import { freePort } from "./servers.mjs";
import { fmt, median } from "./stats.mjs";
import { startMiniflare } from "./workerd.mjs";
import { baselineSpec } from "./workers.mjs";

/** One request on a fresh connection, timed from here (outside workerd). */
function timedRequest(port, path, headers) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

export async function coldStarts({ bundle, scripts, compat, servers, tokens, settings }) {
  const { issuer, origin } = servers;
  const persist = join(OUT, "kv-persist");
  rmSync(persist, { recursive: true, force: true });
  const portcullis = { name: "portcullis", script: bundle.script, bindings: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: portcullisConfig(issuer, "cold", undefined) }, kv: "kv-cold" };
  // "-": the pass-through; "kv": the pass-through after one read of the key set entry (kvName, known once seeded).
  let kvName;
  const specFor = (which) =>
    which === "-" ? baselineSpec(scripts, origin) : which === "kv" ? { name: "kv-read", script: scripts.kvRead, bindings: { ORIGIN_URL: origin.url, KV_NAME: kvName }, kv: "kv-cold" } : portcullis;
  const instance = (port, which = "portcullis") => startMiniflare([{ ...specFor(which), port }], compat, { resourcePersistencePath: persist, handleStructuredLogs: () => {} });

  say("cold start: seeding KV with a first instance ...");
  const port = await freePort();
  const seed = instance(port);
  await seed.ready;
  const first = await timedRequest(port, PATH, bearer(tokens.valid.ES256));
  if (first.status !== 200) throw new Error(`cold start seed request: ${first.status} ${first.body}`);
  const kv = await seed.getKVNamespace("PORTCULLIS_KV");
  for (let i = 0; i < 100 && !(await kv.list({ prefix: "jwks:v2:" })).keys.length; i++) await new Promise((r) => setTimeout(r, 50));
  const entries = (await kv.list({ prefix: "jwks:v2:" })).keys;
  const seeded = entries.length;
  kvName = entries[0]?.name;
  await seed.dispose();
  if (!seeded) throw new Error("cold start: the first instance wrote no jwks:v2:* entry to KV");
  const fetchesAfterSeed = issuer.fetches.cold ?? 0;

  const results = {};
  // "-": the baseline Worker, for reference (what any first request of a fresh workerd costs here); "kv": the
  // same after one KV read of the key set (what no gate with keys in KV can avoid).
  for (const alg of ["-", "kv", ...ALGS]) {
    results[alg] = [];
    for (let i = 0; i < settings.coldRepeats; i++) {
      const t0 = performance.now();
      const mf = instance(port, alg === "-" || alg === "kv" ? alg : "portcullis");
      try {
        await mf.ready;
        const ready = performance.now() - t0;
        const headers = bearer(tokens.valid[alg] ?? tokens.valid.ES256);
        const one = await timedRequest(port, PATH, headers);
        const two = await timedRequest(port, PATH, headers);
        if (one.status !== 200 || two.status !== 200) throw new Error(`cold start ${alg}: ${one.status}/${two.status} ${one.body}`);
        results[alg].push({ ready, first: one.ms, second: two.ms });
      } finally {
        await mf.dispose();
      }
    }
    say(`cold start ${alg === "-" ? "baseline" : alg === "kv" ? "KV read + pass-through" : alg}: first request median ${fmt(median(results[alg].map((r) => r.first)), 1)} ms, second ${fmt(median(results[alg].map((r) => r.second)), 1)} ms`);
  }
  return { results, fetchesAfterSeed, fetchesDuringColdRuns: (issuer.fetches.cold ?? 0) - fetchesAfterSeed };
}
