// From the runs to the numbers of the report: each row's medians, the price of one verification, the
// authorizer overhead ratios (a) and the throughput ratios against hono/jwk (b), and the diagnostics.
// Everything is computed per round from runs measured close together (the same algorithm block), then
// summarised as the median over the rounds, with the range.
import { ALGS } from "./constants.mjs";
import { diagnosticCosts } from "./diagnose.mjs";
import { cpuOf, median, perOp, roundsOf, runAt, summarise, usMore } from "./stats.mjs";

export function analyse(rows, roundCount) {
  for (const row of rows) summariseRow(row);
  const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
  const rounds = roundsOf(roundCount);
  const verifyAt = verifyPerRound(byId, rounds);
  const verify = Object.fromEntries(
    Object.entries(verifyAt).map(([alg, perRound]) => {
      const per = Object.values(perRound).filter(Boolean);
      return [alg, { us: summarise(per.map((v) => v.us))?.median, cpuUs: summarise(per.map((v) => v.cpuUs))?.median }];
    }),
  );
  const ratios = Object.fromEntries(ALGS.map((alg) => [alg, { ...overheadRatios(byId, alg, verifyAt[alg], rounds), vsHono: versusHono(byId, alg, rounds) }]));
  const targets = Object.fromEntries(ALGS.map((alg) => [alg, targetRatios(byId, alg, rounds)]));
  return { byId, verify, ratios, targets, ...diagnosticCosts(byId, rounds) };
}

/**
 * Issue 17's per-request targets: the overhead (over the baseline of the same block and round) of one row
 * divided by another's, per round, from throughput and from workerd CPU; median with min-max over rounds.
 */
export const TARGETS = [
  { id: "off-vs-jose", what: "token cache off: Portcullis overhead / minimal jose gate overhead", row: "pc-static-nocache", versus: "jose", max: 1.0 },
  { id: "on-vs-jose", what: "token cache on: Portcullis overhead / minimal jose gate overhead", row: "pc-static-cache", versus: "jose", max: 0.5 },
  { id: "on-vs-floor", what: "token cache on: Portcullis overhead / floor Worker overhead (SHA-256 + Map lookup + header copy + forward)", row: "pc-static-cache", versus: "floor-cache", max: 1.3 },
];

function targetRatios(byId, alg, rounds) {
  const base = byId.baseline;
  const entry = {};
  for (const target of TARGETS) {
    const row = byId[`${target.row}-${alg}`];
    const versus = byId[`${target.versus}-${alg}`];
    if (!row || !versus || !base) continue;
    const per = rounds
      .map((round) => {
        const r = runAt(row, round);
        const v = runAt(versus, round);
        const b = runAt(base, round, alg);
        if (!r || !v || !b) return undefined;
        // A ratio of overheads means nothing when noise made one of them negative: left out (n/a).
        const ratio = (x, y) => (x >= 0 && y > 0 ? x / y : undefined);
        return { us: usMore(r, b), versusUs: usMore(v, b), ratio: ratio(usMore(r, b), usMore(v, b)), cpuRatio: ratio(cpuOf(r) - cpuOf(b), cpuOf(v) - cpuOf(b)) };
      })
      .filter(Boolean);
    if (!per.length) continue;
    entry[target.id] = {
      us: summarise(per.map((x) => x.us)),
      versusUs: summarise(per.map((x) => x.versusUs)),
      ratio: summarise(per.map((x) => x.ratio)),
      cpuRatio: summarise(per.map((x) => x.cpuRatio)),
    };
  }
  return entry;
}

/** The row's table values: medians of its rounds. */
function summariseRow(row) {
  const rps = row.runs.map((run) => run.rps);
  row.rps = median(rps);
  row.spread = (Math.max(...rps) - Math.min(...rps)) / row.rps;
  row.p50 = median(row.runs.map((run) => run.latency.p50));
  row.p99 = median(row.runs.map((run) => run.latency.p99));
  row.cpuUs = median(row.runs.map(cpuOf));
  row.cores = {
    workerd: median(row.runs.map((run) => run.cpu.workerd)),
    load: median(row.runs.map((run) => run.cpu.load)),
    bench: median(row.runs.map((run) => run.cpu.bench)),
    other: median(row.runs.map((run) => run.cpu.machine - run.cpu.workerd - run.cpu.load - run.cpu.bench)),
    machine: median(row.runs.map((run) => run.cpu.machine)),
  };
}

/** The price of one verification, per algorithm and round (row 5, n=50 vs n=1). */
function verifyPerRound(byId, rounds) {
  const verifyAt = {};
  for (const alg of ALGS) {
    const one = byId[`verify-${alg}-1`];
    const many = byId[`verify-${alg}-50`];
    if (one && many) verifyAt[alg] = Object.fromEntries(rounds.map((round) => [round, perOp(one, many, round)]));
  }
  return verifyAt;
}

/** Ratio (a): a row's overhead over the baseline of its block, in verifications of the same algorithm. */
function overheadRatios(byId, alg, verifyAt, rounds) {
  const entry = {};
  const base = byId.baseline;
  for (const kind of ["pc-nocache", "pc-cache", "pc-quiet", "hono", "hono-cached"]) {
    const row = byId[`${kind}-${alg}`];
    if (!row || !base || !verifyAt) continue;
    const per = rounds
      .map((round) => {
        const r = runAt(row, round);
        const b = runAt(base, round, alg);
        const v = verifyAt[round];
        if (!r || !b || !v) return undefined;
        const us = usMore(r, b);
        const cpuUs = cpuOf(r) - cpuOf(b);
        return { us, cpuUs, ratio: us / v.us, cpuRatio: cpuUs / v.cpuUs };
      })
      .filter(Boolean);
    if (!per.length) continue;
    entry[kind] = {
      us: summarise(per.map((x) => x.us)).median,
      cpuUs: summarise(per.map((x) => x.cpuUs)).median,
      ratio: summarise(per.map((x) => x.ratio)).median,
      ratioRange: summarise(per.map((x) => x.ratio)),
      cpuRatio: summarise(per.map((x) => x.cpuRatio)).median,
      cpuRatioRange: summarise(per.map((x) => x.cpuRatio)),
    };
  }
  return entry;
}

/** Ratio (b): Portcullis throughput over hono/jwk's, per round. */
function versusHono(byId, alg, rounds) {
  const versus = (a, b) =>
    summarise(
      rounds.map((round) => {
        const x = runAt(byId[`${a}-${alg}`], round);
        const y = runAt(byId[`${b}-${alg}`], round);
        return x && y ? x.rps / y.rps : undefined;
      }),
    );
  return {
    nocache: versus("pc-nocache", "hono"),
    cache: versus("pc-cache", "hono"),
    nocacheVsCached: versus("pc-nocache", "hono-cached"),
    cacheVsCached: versus("pc-cache", "hono-cached"),
  };
}
