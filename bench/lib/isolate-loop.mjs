// In-isolate CPU per request: each Worker of the per-request targets (the pass-through, the minimal jose gate,
// the floor, Portcullis with static keys and the cache off and on) wrapped in bench/workers/loop.js, in one
// workerd, the origin stubbed. Per algorithm, the rows are measured in many short interleaved slices (N
// requests each), so that the machine's drift, which on a shared VM moves throughput by tens of percent within
// seconds, hits every row of a slice alike; each ratio is computed per slice, then the median and the
// interquartile range over the slices are reported. CPU is the workerd process's, every thread, from
// /proc/<pid>/task/*/schedstat (nanoseconds).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ALGS, AUDIENCE, BENCH, OUT, SCOPE } from "./constants.mjs";
import { say } from "./log.mjs";
import { median } from "./stats.mjs";
import { startMiniflare } from "./workerd.mjs";
import { workerdChildPid } from "./system.mjs";

const { build } = await import("esbuild");

const ORIGIN_URL = "http://origin.bench.example";
const ISSUER = "https://issuer.bench.example/";

async function wrap(name, script) {
  const outfile = join(OUT, "loop", `${name}.mjs`);
  await build({ entryPoints: [join(BENCH, "workers/loop.js")], outfile, bundle: true, format: "esm", platform: "neutral", target: "es2024", minify: true, alias: { TARGET: script }, external: ["cloudflare:*"], logLevel: "warning" });
  return outfile;
}

const cpuNs = (pid) => readdirSync(`/proc/${pid}/task`).reduce((sum, task) => sum + Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]), 0);

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const summary = (values) => ({ median: median(values), q1: quantile(values, 0.25), q3: quantile(values, 0.75) });

/** `{ byAlg: { [alg]: { overhead: {row: µs}, ratios: {id: {median, q1, q3}} } }, slices, perSlice }`. */
export async function isolateLoop({ bundle, scripts, keys, makeTokens, compat, slices = 150, perSlice = 20 }) {
  const tokens = await makeTokens(keys, ISSUER);
  const pcConfig = (cache) => ({
    realm: "bench",
    issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], keys: keys.jwks.keys, algorithms: ALGS }],
    routes: [{ path: "/v1/**", methods: ["GET"], scopes: [SCOPE] }],
    log: { allowed: false },
    ...(cache ? {} : { token_cache: { enabled: false } }),
  });
  const rows = [
    { id: "baseline", script: scripts.baseline, bindings: { ORIGIN_URL } },
    { id: "jose", script: scripts.jose, bindings: { ORIGIN_URL, JWKS: keys.jwks, ISSUER, AUDIENCE, SCOPE } },
    { id: "floor", script: scripts.floor, bindings: { ORIGIN_URL, FLOOR: "cache", VECTORS: keys.vectors(tokens) } },
    { id: "pc-off", script: bundle.script, bindings: { ORIGIN_URL, PORTCULLIS_CONFIG: pcConfig(false) } },
    { id: "pc-on", script: bundle.script, bindings: { ORIGIN_URL, PORTCULLIS_CONFIG: pcConfig(true) } },
  ];
  const specs = [];
  for (const row of rows) specs.push({ name: `loop-${row.id}`, script: await wrap(row.id, row.script), bindings: row.bindings, kv: `kv-loop-${row.id}` });
  // Miniflare's options want a port per Worker; these are only called through Miniflare (getWorker).
  const mf = startMiniflare(specs.map((spec) => ({ ...spec, port: 0 })), compat, {});
  await mf.ready;
  try {
    const pid = workerdChildPid();
    const workers = Object.fromEntries(await Promise.all(rows.map(async (row) => [row.id, await mf.getWorker(`loop-${row.id}`)])));
    const run = async (id, alg, n) => {
      const before = cpuNs(pid);
      const response = await workers[id].fetch(`http://loop/?n=${n}`, { headers: { "x-token": tokens.valid[alg] } });
      const status = await response.text();
      if (status !== "200") throw new Error(`in-isolate ${id} ${alg}: ${status}`);
      return (cpuNs(pid) - before) / 1000 / n;
    };
    const byAlg = {};
    for (const alg of ALGS) {
      for (const row of rows) for (let i = 0; i < 3; i++) await run(row.id, alg, 50);
      const samples = Object.fromEntries(rows.map((row) => [row.id, []]));
      for (let s = 0; s < slices; s++) for (const row of rows) samples[row.id].push(await run(row.id, alg, perSlice));
      const over = (id, s) => samples[id][s] - samples.baseline[s];
      const ratio = (a, b) => summary(samples.baseline.map((_, s) => over(a, s) / over(b, s)));
      byAlg[alg] = {
        perRequest: Object.fromEntries(rows.map((row) => [row.id, median(samples[row.id])])),
        overhead: Object.fromEntries(rows.slice(1).map((row) => [row.id, summary(samples.baseline.map((_, s) => over(row.id, s)))])),
        ratios: { offVsJose: ratio("pc-off", "jose"), onVsJose: ratio("pc-on", "jose"), onVsFloor: ratio("pc-on", "floor") },
      };
      say(`in-isolate ${alg}: off/jose ${byAlg[alg].ratios.offVsJose.median.toFixed(2)}, on/jose ${byAlg[alg].ratios.onVsJose.median.toFixed(2)}, on/floor ${byAlg[alg].ratios.onVsFloor.median.toFixed(2)}`);
    }
    return { byAlg, slices, perSlice };
  } finally {
    await mf.dispose();
  }
}
