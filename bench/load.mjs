// The load generator of `npm run bench`, run by lib/measure.mjs as its own process (never inside the process
// that hosts workerd or the origin). Argument: one JSON object
//   { url, headers, connections, warmup, duration, pids: { workerd, bench }, dpop? }
// With `dpop` (a client key and its bound token) every request carries a fresh DPoP proof for `url`.
// It runs autocannon for `warmup` seconds (discarded), then for `duration` seconds (measured), and prints one
// JSON line: autocannon's numbers plus the CPU time (from /proc) that workerd, this process, the bench process
// and the whole machine used during the measured window.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";
import { dpopProofSigner } from "./lib/fixtures.mjs";

const job = JSON.parse(process.argv[2]);
const TICK = 100; // USER_HZ: /proc times are in 1/100 s on Linux.

/** For DPoP rows: one request template whose `dpop` header is a fresh proof each time (a replay would be 401). */
function dpopRequests() {
  if (!job.dpop) return {};
  const proofFor = dpopProofSigner(job.dpop);
  const htu = job.url.split("?")[0];
  return { requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, dpop: proofFor(htu) } }) }] };
}
const perRequest = dpopRequests();

function run(duration) {
  return new Promise((resolve, reject) => {
    autocannon(
      { url: job.url, headers: job.headers, connections: job.connections, duration, timeout: 30, ...perRequest },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}

/** utime + stime of a process (all threads), in seconds; NaN when unreadable. */
function processCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICK; // fields 14 and 15 of proc(5)
  } catch {
    return NaN;
  }
}

/** Busy and total CPU seconds of the whole machine, summed over cores. */
function machineCpu() {
  const values = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = values[3] + (values[4] ?? 0); // idle + iowait
  return { busy: (total - idle) / TICK, total: total / TICK };
}

function snapshot() {
  const own = process.cpuUsage();
  return {
    at: performance.now(),
    workerd: processCpu(job.pids.workerd),
    bench: processCpu(job.pids.bench),
    load: (own.user + own.system) / 1e6,
    machine: machineCpu(),
  };
}

if (job.warmup > 0) await run(job.warmup);
const before = snapshot();
const result = await run(job.duration);
const after = snapshot();

const seconds = (after.at - before.at) / 1000;
const cores = (a, b) => (b - a) / seconds; // average number of cores busy
process.stdout.write(
  `${JSON.stringify({
    requests: result.requests.total,
    duration: result.duration,
    rps: result.requests.total / result.duration,
    latency: { p50: result.latency.p50, p99: result.latency.p99, mean: result.latency.average, max: result.latency.max },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    cpu: {
      seconds,
      workerdSeconds: after.workerd - before.workerd,
      workerd: cores(before.workerd, after.workerd),
      load: cores(before.load, after.load),
      bench: cores(before.bench, after.bench),
      machine: cores(before.machine.busy, after.machine.busy),
      machineCapacity: (after.machine.total - before.machine.total) / seconds,
    },
  })}\n`,
);
