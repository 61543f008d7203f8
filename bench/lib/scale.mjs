// The scale table: parseConfig (parse + validate, once per isolate) and matchRoute (per request) against
// route tables of 10 to 10,000 rules, in this Node process (pure CPU work: no workerd, no network).
// Tables: "uniform" = N rules `GET /v1/resI/:id/subJ/**`; "mixed" = the same count spread over methods,
// hosts, literal / parameter / rest segments and exact patterns, as a real table would be.
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { OUT, ROOT } from "./constants.mjs";

const { build } = await import("esbuild");

export const SCALE_SIZES = [10, 100, 1000, 10000];
const ISSUERS = [{ issuer: "https://issuer.test/", audiences: ["a"], jwks_uri: "https://issuer.test/jwks" }];

async function loadModule() {
  const outfile = join(OUT, "scale", "entry.mjs");
  await build({ entryPoints: [join(ROOT, "bench/scale/entry.ts")], bundle: true, format: "esm", platform: "neutral", outfile, logLevel: "error" });
  return import(`${outfile}?${Date.now()}`);
}

/** `GET /v1/resI/:id/subJ/**`, ten J per I. */
export function uniformRoutes(n) {
  return Array.from({ length: n }, (_, k) => ({ path: `/v1/res${Math.floor(k / 10)}/:id/sub${k % 10}/**`, methods: ["GET"], scopes: ["s"] }));
}

const METHODS = [["GET"], ["POST"], ["PUT", "PATCH"], ["DELETE"], ["*"], ["HEAD"]];
/** Rules of every shape: exact, parameter, rest, host-bound, `*` methods; no two tie (the table is valid). */
export function mixedRoutes(n) {
  return Array.from({ length: n }, (_, k) => {
    const i = Math.floor(k / 12);
    const methods = METHODS[k % 6];
    switch (Math.floor(k / 6) % 2 === 0 ? k % 4 : 4 + (k % 2)) {
      case 0:
        return { path: `/api/v${i % 3}/items${i}/:id`, methods, scopes: ["s"] };
      case 1:
        return { path: `/api/v${i % 3}/items${i}/:id/**`, methods, scopes: ["s"] };
      case 2:
        return { path: `/files${i}/*/raw/${k % 12}`, methods, access: "public" };
      case 3:
        return { path: `/org/:org/team${i}/${k % 12}`, methods, host: `h${i % 5}.example.com`, scopes: ["s"] };
      case 4:
        return { path: `/static${i}/${k % 12}/**`, methods, access: "public" };
      default:
        return { path: `/v${i}/${k % 12}`, methods, scopes_any: ["a", "b"] };
    }
  });
}

/** Request paths that hit rules spread over the table, and some that match nothing. */
function requestsFor(kind, n) {
  const out = [];
  for (let q = 0; q < 64; q++) {
    const k = Math.floor(((q * 2654435761) >>> 0) % n);
    const i = Math.floor(k / 10);
    if (kind === "uniform") out.push({ method: q % 8 === 7 ? "HEAD" : "GET", host: "api.example.com", path: q % 16 === 15 ? `/v1/nope${k}/x` : `/v1/res${i}/42/sub${k % 10}/a/b` });
    else {
      const j = Math.floor(k / 12);
      const paths = [`/api/v${j % 3}/items${j}/7`, `/api/v${j % 3}/items${j}/7/x/y`, `/files${j}/f/raw/${k % 12}`, `/org/o/team${j}/${k % 12}`, `/static${j}/${k % 12}/a.css`, `/v${j}/${k % 12}`];
      out.push({ method: ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"][q % 6], host: `h${j % 5}.example.com`, path: paths[q % 6] });
    }
  }
  return out;
}

/** Median of `repeat` timings of fn, in ms; each timing runs fn `inner` times and divides. */
function timeMs(fn, repeat, inner = 1) {
  const samples = [];
  for (let r = 0; r < repeat; r++) {
    const start = performance.now();
    for (let i = 0; i < inner; i++) fn();
    samples.push((performance.now() - start) / inner);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)], min: samples[0], max: samples.at(-1) };
}

/** One row per table kind and size: validation ms (parseConfig of the whole configuration) and match µs. */
export async function scaleTable({ sizes = SCALE_SIZES, kinds = ["uniform", "mixed"], say = () => {} } = {}) {
  const m = await loadModule();
  const rows = [];
  for (const kind of kinds) {
    for (const n of sizes) {
      const routes = kind === "uniform" ? uniformRoutes(n) : mixedRoutes(n);
      const raw = { issuers: ISSUERS, routes };
      const first = m.parseConfig(raw);
      if (!first.ok) throw new Error(`scale ${kind} ${n}: ${JSON.stringify(first.issues.slice(0, 3))}`);
      const repeat = n >= 10000 ? 3 : n >= 1000 ? 5 : 15;
      const validate = timeMs(() => m.parseConfig(raw), repeat);
      const paths = m.pathPolicy(first.config.paths);
      const compiled = m.compileRoutes(first.config.routes, paths);
      const requests = requestsFor(kind, n);
      let hits = 0;
      for (const request of requests) if (m.matchRoute(compiled, request, paths)) hits++;
      const perCall = requests.length;
      const budget = 20; // ms per timing
      const probe = timeMs(() => requests.forEach((r) => m.matchRoute(compiled, r, paths)), 3);
      const inner = Math.max(1, Math.round(budget / Math.max(probe.median, 1e-3)));
      const match = timeMs(() => requests.forEach((r) => m.matchRoute(compiled, r, paths)), 7, inner);
      const row = { kind, n, validateMs: validate, matchUs: { median: (match.median * 1000) / perCall, min: (match.min * 1000) / perCall, max: (match.max * 1000) / perCall }, hits: `${hits}/${requests.length}` };
      say(`scale ${kind} ${n}: validate ${validate.median.toFixed(2)} ms, match ${row.matchUs.median.toFixed(3)} µs (${row.hits} matched)`);
      rows.push(row);
    }
  }
  return rows;
}

// `node bench/lib/scale.mjs [sizes...]`: the scale table alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number).filter(Boolean);
  await scaleTable({ sizes: sizes.length ? sizes : SCALE_SIZES, say: console.log });
}
