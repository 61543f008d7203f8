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
  return { byId, verify, ratios, ...diagnosticCosts(byId, rounds) };
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
