// The statistics every table uses: medians and ranges over rounds, and differences between runs of the
// same round (the rows a ratio compares are measured within ~30 s of each other, in the same block).
import { VERIFY_N } from "./constants.mjs";

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function fmt(value, digits) {
  return value === undefined || Number.isNaN(value) ? "n/a" : value.toFixed(digits);
}

/** Median, min and max of the finite values; undefined when there are none. */
export function summarise(values) {
  const clean = values.filter((value) => value !== undefined && Number.isFinite(value));
  return clean.length ? { median: median(clean), min: Math.min(...clean), max: Math.max(...clean) } : undefined;
}

/** Microseconds of workerd CPU (all its threads, from /proc) per completed request of one run. */
export const cpuOf = (run) => (run.cpu.workerdSeconds / run.requests) * 1e6;

/** How many more microseconds a request of run `x` takes than one of run `y`, from their throughput. */
export const usMore = (x, y) => (1 / x.rps - 1 / y.rps) * 1e6;

/** The run of `row` in `round` (and in the block of that algorithm, when given). */
export const runAt = (row, round, block) => row?.runs.find((run) => run.round === round && (block === undefined || run.block === block));

export const roundsOf = (count) => Array.from({ length: count }, (_, i) => i + 1);

const EXTRA_OPS = VERIFY_N[1] - VERIFY_N[0];

/** The cost of one more operation in a request: (n=50 minus n=1 in the same round) / 49. */
export function perOp(one, many, round) {
  const a = runAt(one, round);
  const b = runAt(many, round);
  return a && b ? { us: usMore(b, a) / EXTRA_OPS, cpuUs: (cpuOf(b) - cpuOf(a)) / EXTRA_OPS } : undefined;
}

/** One paired difference per round, `a` minus `b`, from throughput and from workerd CPU: median [range]. */
export function paired(a, b, rounds, block) {
  const per = (value) =>
    summarise(
      rounds.map((round) => {
        const x = runAt(a, round, block);
        const y = runAt(b, round, block);
        return x && y ? value(x, y) : undefined;
      }),
    );
  return { us: per(usMore), cpuUs: per((x, y) => cpuOf(x) - cpuOf(y)) };
}
