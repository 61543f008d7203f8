// `node bench/hotpath.mjs [--profile] [--alg ES256] [--seconds S]`: the per-request CPU work of Portcullis,
// in this Node process, with the origin stubbed (a `fetch` that answers at once), against the minimal jose
// gate and the floor Worker run the same way. No sockets and no workerd: the numbers are JavaScript work
// (V8 is workerd's engine, but Request/Headers are Node's). Rows alternate in short slices, so machine
// drift hits all alike; the table shows µs per request (median of the slices) and the overhead over the
// pass-through. `--profile` writes one V8 CPU profile per Portcullis row and attributes its samples to the
// pipeline stages by the source module of the innermost Portcullis frame (see STAGES).
import "./lib/node-version.mjs";
import { Session } from "node:inspector/promises";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ALGS, AUDIENCE, OUT, PATH, ROOT, BENCH } from "./lib/constants.mjs";
import { makeKeys, makeTokens, bearer } from "./lib/fixtures.mjs";
import { fmt, median } from "./lib/stats.mjs";

const { build } = await import("esbuild");
const { values: args } = parseArgs({ options: { profile: { type: "boolean" }, alg: { type: "string" }, seconds: { type: "string" } } });
const ISSUER = "https://issuer.bench.example/";
const dir = join(OUT, "hotpath");
mkdirSync(dir, { recursive: true });

/** Source module -> pipeline stage (first match wins); frames outside these are attributed to their caller. */
export const STAGES = [
  [/src\/pipeline\/(request|local)\.ts|src\/policy\/path\.ts|src\/lib\/url\.ts/, "request (URL, canonical path, local answers)"],
  [/src\/extract\//, "extract (bearer token)"],
  [/src\/validate\/|node_modules\/jose\//, "validate (token cache, JWS, keys, claims; jose)"],
  [/src\/pipeline\/decide\.ts|src\/policy\//, "decide (rule match, requirements)"],
  [/src\/pipeline\/identity\.ts|src\/forward\/headers\.ts|src\/lib\/claim-path\.ts/, "identity (identity headers, header copy)"],
  [/src\/forward\//, "forward (outbound request)"],
  [/src\/pipeline\/decision-log\.ts|src\/lib\/log\.ts/, "log"],
  [/src\/pipeline\/gate\.ts|src\/worker\.ts/, "gate (the steps' glue)"],
  [/src\/config\//, "config"],
];

async function bundle(entry, name) {
  const outfile = join(dir, `${name}.mjs`);
  await build({ entryPoints: [entry], bundle: true, format: "esm", platform: "neutral", target: "es2024", conditions: ["workerd", "worker", "browser"], mainFields: ["module", "main"], outfile, logLevel: "error" });
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

const portcullis = await bundle(join(ROOT, "src/worker.ts"), "portcullis");
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
  const lines = readFileSync(portcullis.outfile, "utf8").split("\n");
  // esbuild's `// path` comment before each module's code: bundle line -> source module.
  const moduleAt = [];
  let current = "";
  lines.forEach((line, i) => {
    const m = /^\/\/ (\S+\.(?:ts|js|mjs))$/.exec(line);
    if (m) current = m[1];
    moduleAt[i] = current;
  });
  const stageOf = (frame) => {
    if (!frame.url.includes("portcullis.mjs")) return undefined;
    const module = moduleAt[frame.lineNumber] ?? "";
    return STAGES.find(([re]) => re.test(module))?.[1] ?? (module.includes("node_modules") ? `other library (${module.split("node_modules/")[1]?.split("/")[0]})` : undefined);
  };
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
    writeFileSync(join(dir, `${id}-${row.alg}.cpuprofile`), JSON.stringify(profile));
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const byStage = new Map();
    let total = 0;
    profile.samples.forEach((sample, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      total += dt;
      let stage;
      for (let at = sample; at !== undefined && !stage; at = parent.get(at)) stage = stageOf(nodes.get(at).callFrame);
      const leaf = nodes.get(sample).callFrame.functionName;
      stage ??= ["(idle)", "(program)", "(garbage collector)"].includes(leaf) ? leaf : "outside Portcullis (bench loop, Node's Request/Response, runtime)";
      byStage.set(stage, (byStage.get(stage) ?? 0) + dt);
    });
    console.log(`\n${id} ${row.alg}: ${n} requests profiled, ${fmt(total / n, 1)} µs of samples per request (profiler on); profile in ${join(dir, `${id}-${row.alg}.cpuprofile`)}`);
    console.log("| stage | µs per request | share |\n|---|---:|---:|");
    for (const [stage, us] of [...byStage].sort((a, b) => b[1] - a[1])) console.log(`| ${stage} | ${fmt(us / n, 1)} | ${fmt((100 * us) / total, 1)} % |`);
  }
}
