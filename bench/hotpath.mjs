// `node bench/hotpath.mjs [--profile] [--alg ES256] [--seconds S] [--src DIR]`: the per-request CPU work of Portcullis,
// in this Node process, with the origin stubbed (a `fetch` that answers at once), against the minimal jose
// gate and the floor Worker run the same way. No sockets and no workerd: the numbers are JavaScript work
// (V8 is workerd's engine, but Request/Headers are Node's). Rows alternate in short slices, so machine
// drift hits all alike; the table shows µs per request (median of the slices) and the overhead over the
// pass-through. `--profile` writes one V8 CPU profile per Portcullis row and attributes its samples to the
// pipeline stages by the source module of the innermost Portcullis frame (bench/lib/stages.mjs).
import "./lib/node-version.mjs";
import { Session } from "node:inspector/promises";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ALGS, AUDIENCE, BENCH, OUT, PATH, ROOT } from "./lib/constants.mjs";
import { bearer, makeKeys, makeTokens } from "./lib/fixtures.mjs";
import { stageAttribution, stageTable } from "./lib/stages.mjs";
import { fmt, median } from "./lib/stats.mjs";

const { build } = await import("esbuild");
const { values: args } = parseArgs({ options: { profile: { type: "boolean" }, alg: { type: "string" }, seconds: { type: "string" }, src: { type: "string" } } });
const ISSUER = "https://issuer.bench.example/";
const dir = join(OUT, "hotpath");
mkdirSync(dir, { recursive: true });

// `cloudflare:workers` exists only inside workerd; the DPoP replay store extends its DurableObject, which
// this bench never instantiates, so an empty class stands in for it; the Worker builds its gate from the
// imported `env` at startup, here empty (the first request builds it from its own env).
const workersModule = {
  name: "cloudflare-workers",
  setup(b) {
    b.onResolve({ filter: /^cloudflare:workers$/ }, () => ({ path: "cloudflare:workers", namespace: "stub" }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "export class DurableObject {}\nexport const env = {};", loader: "js" }));
  },
};

async function bundle(entry, name) {
  const outfile = join(dir, `${name}.mjs`);
  await build({ entryPoints: [entry], bundle: true, format: "esm", platform: "neutral", target: "es2024", conditions: ["workerd", "worker", "browser"], mainFields: ["module", "main"], outfile, logLevel: "error", plugins: [workersModule] });
  return { outfile, module: (await import(`${outfile}?${Date.now()}`)).default };
}

const keys = await makeKeys();
const tokens = await makeTokens(keys, ISSUER);
globalThis.fetch = async () => new Response("ok");
const ctx = { waitUntil() {} };
const ORIGIN_URL = "http://origin.bench.example";
const portcullisConfig = (tokenCache) => ({
  realm: "bench",
  issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], keys: keys.jwks.keys, algorithms: ALGS }],
  routes: [{ path: "/v1/**", methods: ["GET"], scopes: ["api:read"] }],
  log: { allowed: false },
  ...(tokenCache === undefined ? {} : { token_cache: tokenCache }),
});

// --src DIR: another copy of src/ (an older commit, for a before/after), e.g. `git archive REV src | tar -x -C DIR/..`.
const portcullis = await bundle(join(args.src ?? join(ROOT, "src"), "worker.ts"), "portcullis");
const workers = {
  baseline: (await bundle(join(BENCH, "workers/baseline.js"), "baseline")).module,
  jose: (await bundle(join(BENCH, "workers/jose-gate.js"), "jose")).module,
  floor: (await bundle(join(BENCH, "workers/floor.js"), "floor")).module,
  portcullis: portcullis.module,
};
const envs = {
  baseline: { ORIGIN_URL },
  jose: { ORIGIN_URL, JWKS: keys.jwks, ISSUER, AUDIENCE, SCOPE: "api:read" },
  floor: { ORIGIN_URL, FLOOR: "cache", VECTORS: keys.vectors(tokens) },
  "pc-off": { ORIGIN_URL, PORTCULLIS_CONFIG: portcullisConfig({ enabled: false }) },
  "pc-on": { ORIGIN_URL, PORTCULLIS_CONFIG: portcullisConfig(undefined) },
};
const rows = (alg) => [
  ["baseline", "baseline"],
  ["jose", "jose"],
  ["floor", "floor"],
  ["pc-off", "portcullis"],
  ["pc-on", "portcullis"],
].map(([id, worker]) => ({ id, worker, alg }));

async function once(row) {
  const request = new Request(`https://api.bench.example${PATH}`, { headers: { ...bearer(tokens.valid[row.alg]), accept: "application/json" } });
  const response = await workers[row.worker].fetch(request, envs[row.id], ctx);
  if (response.status !== 200) throw new Error(`${row.id} ${row.alg}: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

/** µs per request over `ms` milliseconds. */
async function slice(row, ms) {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 20; i++) await once(row);
    n += 20;
  }
  return ((performance.now() - start) * 1000) / n;
}

const seconds = Number(args.seconds ?? 4);
const algs = args.alg ? [args.alg] : ALGS;
const table = [];
for (const alg of algs) {
  const list = rows(alg);
  for (const row of list) await slice(row, 300); // warm-up: first requests, JIT
  const samples = Object.fromEntries(list.map((row) => [row.id, []]));
  const slices = Math.max(3, Math.round((seconds * 1000) / (list.length * 100)));
  for (let s = 0; s < slices; s++) for (const row of list) samples[row.id].push(await slice(row, 100));
  const us = Object.fromEntries(Object.entries(samples).map(([id, v]) => [id, median(v)]));
  // Per slice round, the overhead ratios (the rows of one round ran within a second of each other).
  const ratio = (a, b) => {
    const per = samples[a].map((x, i) => (x - samples.baseline[i]) / (samples[b][i] - samples.baseline[i]));
    return { median: median(per), min: Math.min(...per), max: Math.max(...per) };
  };
  table.push({ alg, us, offVsJose: ratio("pc-off", "jose"), onVsJose: ratio("pc-on", "jose"), onVsFloor: ratio("pc-on", "floor") });
}

const r = (x) => `${fmt(x.median, 2)} (${fmt(x.min, 2)}-${fmt(x.max, 2)})`;
console.log("\n| alg | pass-through µs | jose gate overhead | floor overhead | Portcullis cache off overhead | cache on overhead | off / jose (≤ 1.0) | on / jose (≤ 0.5) | on / floor (≤ 1.3) |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const { alg, us, offVsJose, onVsJose, onVsFloor } of table) {
  const over = (id) => fmt(us[id] - us.baseline, 1);
  console.log(`| ${alg} | ${fmt(us.baseline, 1)} | ${over("jose")} | ${over("floor")} | ${over("pc-off")} | ${over("pc-on")} | ${r(offVsJose)} | ${r(onVsJose)} | ${r(onVsFloor)} |`);
}

if (args.profile) {
  const attribute = stageAttribution(portcullis.outfile, (url) => url.includes("portcullis.mjs"));
  for (const id of ["pc-off", "pc-on"]) {
    const row = { id, worker: "portcullis", alg: algs[0] };
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 50 });
    await session.post("Profiler.start");
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000) {
      await once(row);
      n++;
    }
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    const file = join(dir, `${id}-${row.alg}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    const stages = attribute(profile);
    console.log(`\n${id} ${row.alg}: ${n} requests profiled, ${fmt(stages.total / n, 1)} µs of samples per request (profiler on); profile in ${file}`);
    console.log(stageTable(stages, n));
  }
}
