// The measurements: each row under load from bench/load.mjs (autocannon, one child process per
// measurement), round after round, in blocks per algorithm.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { BENCH, PATH, ALGS } from "./constants.mjs";
import { say } from "./log.mjs";
import { cpuOf, fmt } from "./stats.mjs";

/** What bench/load.mjs is asked to do: `warmup` seconds discarded, then `duration` seconds measured. */
export function loadJob(row, { port, workerdPid }, { connections }, warmup, duration) {
  return {
    url: `http://127.0.0.1:${port}${row.path ?? PATH}`,
    headers: row.headers,
    // DPoP rows: the client key and token, for a fresh proof per request (load.mjs).
    ...(row.dpop ? { dpop: row.dpop } : {}),
    connections,
    warmup,
    duration,
    pids: { workerd: workerdPid, bench: process.pid },
  };
}

/** One load-generator process: warm-up, then the measured window. */
export function runLoad(job) {
  return new Promise((resolve, reject) => {
    // Started from this process, so under --pin it inherits this process's CPU (not workerd's).
    const child = spawn(process.execPath, [join(BENCH, "load.mjs"), JSON.stringify(job)], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split("\n").pop()));
      } catch {
        reject(new Error(`load generator printed no result: ${stdout} ${stderr}`));
      }
    });
  });
}

/**
 * The machine's speed drifts by 10-20 % over tens of seconds (a shared VM), so every round measures one
 * block per algorithm, each with its own baseline: the rows a ratio compares are measured within ~30 s.
 */
function schedule(rows) {
  let blocks = ALGS.map((alg) => ({ alg, rows: rows.filter((row) => row.id === "baseline" || row.alg === alg || (alg === "ES256" && row.alg === "-")) }));
  blocks = blocks.filter((block) => block.rows.some((row) => row.id !== "baseline"));
  if (!blocks.length) blocks = [{ alg: "-", rows }];
  return blocks.flatMap((block) => block.rows.map((row) => ({ row, block: block.alg })));
}

/** Every round of every row; each run lands in `row.runs`, the decision log lines in `row.tally`. */
export async function measureRows(rows, workerd, settings) {
  const plan = schedule(rows);
  const slots = settings.rounds * plan.length;
  const estimate = slots * (settings.warmup + settings.duration + 0.45) + rows.length * (settings.prime - settings.warmup);
  say(`${rows.length} rows, ${plan.length} measurements per round, ${settings.rounds} rounds of ${settings.duration} s, ${settings.connections} connections (about ${Math.round(estimate)} s)`);
  const primed = new Set();
  for (let round = 1; round <= settings.rounds; round++) {
    for (const { row, block } of plan) {
      workerd.logs.current = row.tally ??= { lines: 0, decisions: 0, via: {}, events: {} };
      // The first warm-up of each row primes its isolate (first JWKS fetch, key imports, JIT).
      const warmup = primed.has(row.id) ? settings.warmup : settings.prime;
      const result = await runLoad(loadJob(row, { port: workerd.portOf[row.worker], workerdPid: workerd.pid }, settings, warmup, settings.duration));
      primed.add(row.id);
      result.round = round;
      result.block = block;
      workerd.logs.current = undefined;
      if (result.non2xx || result.errors || result.timeouts) {
        throw new Error(`${row.id}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
      }
      row.runs.push(result);
      say(
        `round ${round} ${row.id.padEnd(22)} ${fmt(result.rps, 0).padStart(6)} req/s  p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms  ` +
          `workerd ${fmt(result.cpu.workerd, 2)} cores, ${fmt(cpuOf(result), 1)} us/req; load ${fmt(result.cpu.load, 2)}, bench ${fmt(result.cpu.bench, 2)}, machine ${fmt(result.cpu.machine, 2)}/${fmt(result.cpu.machineCapacity, 1)}`,
      );
    }
  }
}
