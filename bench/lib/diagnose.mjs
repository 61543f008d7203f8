// `--diagnose`: rows that price the parts of a Portcullis request (never part of the main table).
// - Portcullis from src/ with a no-op logger (bench/workers/portcullis-nolog.js), cache off and on;
// - (the floor Workers, bench/workers/floor.js, are started here; their rows are in the main table, row 8);
// - single operations inside workerd, run n=1 and n=50 times by the verify Worker.
// Their Workers always run (the functional checks cover them); only the rows depend on the flag.
import { bearer } from "./fixtures.mjs";
import { portcullisConfig } from "./portcullis.mjs";
import { VERIFY_N } from "./constants.mjs";
import { fmt, paired, perOp, summarise } from "./stats.mjs";

export const DIAGNOSTIC_OPS = ["digest", "log", "timer", "request"];

export function diagnosticWorkerSpecs({ scripts, issuer, origin, keys, tokens }) {
  const nolog = (name, tokenCache) => ({
    name,
    script: scripts.nolog,
    bindings: { ORIGIN_URL: origin.url, PORTCULLIS_CONFIG: portcullisConfig(issuer, name, tokenCache) },
    kv: `kv-${name}`,
  });
  const floor = (mode) => ({ name: `floor-${mode}`, script: scripts.floor, bindings: { ORIGIN_URL: origin.url, VECTORS: keys.vectors(tokens), FLOOR: mode } });
  return [nolog("pc-nolog-nocache", { enabled: false }), nolog("pc-nolog-cache", undefined), floor("cache"), floor("verify")];
}

/** The D rows, all in the ES256 block. */
export function diagnosticRows(tokens) {
  const es256 = bearer(tokens.valid.ES256);
  return [
    { id: "pc-nolog-nocache-ES256", group: "D", name: "Portcullis from src/, no-op logger, token cache off", worker: "pc-nolog-nocache", alg: "ES256", headers: es256 },
    { id: "pc-nolog-cache-ES256", group: "D", name: "Portcullis from src/, no-op logger, token cache on", worker: "pc-nolog-cache", alg: "ES256", headers: es256 },
    ...DIAGNOSTIC_OPS.flatMap((op) =>
      VERIFY_N.map((n) => ({ id: `op-${op}-${n}`, group: "D", name: `${op} x${n} per request`, worker: "verify", alg: "-", n, op, path: `/?op=${op}&n=${n}`, headers: es256 })),
    ),
  ];
}

/**
 * `ops`: the cost of one more of each operation. `pairs`: Portcullis with vs without its log line, without it
 * vs the baseline, and the floors vs the baseline, each paired per round.
 */
export function diagnosticCosts(byId, rounds) {
  const base = byId.baseline;
  const ops = {};
  for (const op of DIAGNOSTIC_OPS) {
    const one = byId[`op-${op}-1`];
    const many = byId[`op-${op}-50`];
    if (!one || !many) continue;
    const per = rounds.map((round) => perOp(one, many, round)).filter(Boolean);
    ops[op] = { us: summarise(per.map((x) => x.us)).median, cpuUs: summarise(per.map((x) => x.cpuUs)).median };
  }
  const pairs = {};
  for (const kind of ["nocache", "cache"]) {
    const quiet = byId[`pc-nolog-${kind}-ES256`];
    const loud = byId[`pc-${kind}-ES256`];
    if (quiet && loud) pairs[`log-${kind}`] = paired(loud, quiet, rounds);
    if (quiet && base) pairs[`nolog-${kind}`] = paired(quiet, base, rounds, "ES256");
  }
  for (const mode of ["verify", "cache"]) {
    const floor = byId[`floor-${mode}-ES256`];
    if (floor && base) pairs[`floor-${mode}`] = paired(floor, base, rounds, "ES256");
  }
  return { ops, pairs };
}

/** The report's "Diagnostics" section, when there were diagnostic rows. */
export function renderDiagnostics(out, { byId, verify, ops, pairs }) {
  if (!byId["pc-nolog-nocache-ES256"] && !Object.keys(ops).length) return;
  out("## Diagnostics (`--diagnose`): where the time goes");
  out();
  out("Rows marked D above. Costs inside workerd, from throughput (and from workerd CPU time). The n=50 vs n=1 difference gives the marginal cost of one more operation in a request; a first call per request that costs more (a request's first timer, say) is not seen this way: use `--profile` for that.");
  out();
  out("| what | µs (throughput) | µs (workerd CPU) |");
  out("|---|---:|---:|");
  const verifyEs = verify.ES256;
  if (verifyEs) out(`| crypto.subtle.verify ES256, one | ${fmt(verifyEs.us, 1)} | ${fmt(verifyEs.cpuUs, 1)} |`);
  const opLabels = { digest: "crypto.subtle.digest SHA-256 of the token (the cache key), one", log: "console.log of one decision line (JSON.stringify + console.log)", timer: "setTimeout + clearTimeout (forward timeout), one", request: "new Headers(request.headers) + new Request(request, { headers }), one" };
  for (const [op, cost] of Object.entries(ops)) out(`| ${opLabels[op]} | ${fmt(cost.us, 1)} | ${fmt(cost.cpuUs, 1)} |`);
  const cell = (x) => (x ? `${fmt(x.median, 1)} [${fmt(x.min, 1)} to ${fmt(x.max, 1)}]` : "n/a");
  for (const kind of ["nocache", "cache"]) {
    const state = kind === "cache" ? "on" : "off";
    const log = pairs[`log-${kind}`];
    const nolog = pairs[`nolog-${kind}`];
    if (log) out(`| Portcullis ES256, token cache ${state}: real Worker minus the no-op-logger build (the log line and all it costs), per round [range] | ${cell(log.us)} | ${cell(log.cpuUs)} |`);
    if (nolog) out(`| Portcullis ES256, token cache ${state}, no-op logger: overhead over the baseline, per round [range] | ${cell(nolog.us)} | ${cell(nolog.cpuUs)} |`);
  }
  for (const [kind, what, target] of [["verify", "one verify + header copy + forward", 1.25], ["cache", "SHA-256 + Map lookup + header copy + forward", 0.25]]) {
    const floor = pairs[`floor-${kind}`];
    if (!floor || !verifyEs) continue;
    out(`| Floor, no checks (${what}): overhead over the baseline, per round [range]; as a ratio of one ES256 verify: ${fmt(floor.us?.median / verifyEs.us, 2)} (throughput), ${fmt(floor.cpuUs?.median / verifyEs.cpuUs, 2)} (CPU), against the ${target} target of row ${kind === "cache" ? 3 : 2} | ${cell(floor.us)} | ${cell(floor.cpuUs)} |`);
  }
  out();
}
