// Row 6. A first Miniflare instance with KV persistence verifies one token (fetching the JWKS and writing it
// to KV), then is disposed. Each start then runs a fresh workerd on the same persistence directory and times,
// from here, its first request (a fresh isolate: KV read, key import, verification, forwarding) and a second
// one for comparison. The issuer's counter shows whether the JWKS was fetched again.
//
// Two settings, each start of every Worker interleaved round by round (so the machine's drift hits all of a
// round alike, and each ratio is taken within its round):
// - "cold KV": the fresh workerd as it comes. Its first KV read also starts Miniflare's KV emulator, a
//   service of the same workerd, which on Cloudflare is a running system, not part of an isolate's start;
// - "warm KV": a helper Worker in the same workerd (bench/workers/kv-warm.js) reads the entry once before the
//   timed request, so the emulator is running; the Worker under test is still a fresh isolate.
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
  const warmer = (port) => ({ name: "kv-warm", script: scripts.kvWarm, bindings: { KV_NAME: kvName }, kv: "kv-cold", port });
  const instance = (port, which, warmPort) =>
    startMiniflare([{ ...specFor(which), port }, ...(warmPort ? [warmer(warmPort)] : [])], compat, { resourcePersistencePath: persist, handleStructuredLogs: () => {} });

  say("cold start: seeding KV with a first instance ...");
  const port = await freePort();
  const warmPort = await freePort();
  const seed = instance(port, "portcullis");
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

  // "-": the baseline Worker, for reference (what any first request of a fresh workerd costs here); "kv": the
  // same after one KV read of the key set (what no gate with keys in KV can avoid).
  const workers = ["-", "kv", ...ALGS];
  const results = Object.fromEntries(SETTINGS.map((setting) => [setting, Object.fromEntries(workers.map((alg) => [alg, []]))]));
  for (let i = 0; i < settings.coldRepeats; i++) {
    for (const setting of SETTINGS) {
      for (const alg of workers) {
        const warm = setting === "warm";
        const t0 = performance.now();
        const mf = instance(port, alg === "-" || alg === "kv" ? alg : "portcullis", warm ? warmPort : undefined);
        try {
          await mf.ready;
          const ready = performance.now() - t0;
          if (warm) {
            const read = await timedRequest(warmPort, "/", {});
            if (read.status !== 204) throw new Error(`cold start: the KV warm-up Worker answered ${read.status}`);
          }
          const headers = bearer(tokens.valid[alg] ?? tokens.valid.ES256);
          const one = await timedRequest(port, PATH, headers);
          const two = await timedRequest(port, PATH, headers);
          if (one.status !== 200 || two.status !== 200) throw new Error(`cold start ${alg}: ${one.status}/${two.status} ${one.body}`);
          results[setting][alg].push({ ready, first: one.ms, second: two.ms });
        } finally {
          await mf.dispose();
        }
      }
    }
  }
  for (const setting of SETTINGS) {
    say(`cold start, ${setting} KV, first request medians: ${workers.map((alg) => `${alg === "-" ? "baseline" : alg === "kv" ? "KV read" : alg} ${fmt(median(results[setting][alg].map((r) => r.first)), 1)} ms`).join(", ")}`);
  }
  return { results, fetchesDuringColdRuns: (issuer.fetches.cold ?? 0) - fetchesAfterSeed, fetchesAfterSeed };
}

/** "cold": the fresh workerd as it comes; "warm": its KV emulator has served one read first. */
export const SETTINGS = ["cold", "warm"];

/** Per start, `alg`'s first request over `reference`'s first request of the same round and setting. */
export function coldRatios(cold, setting, alg, reference) {
  const ours = cold.results[setting][alg];
  const theirs = cold.results[setting][reference];
  return ours.map((run, i) => run.first / theirs[i].first);
}
