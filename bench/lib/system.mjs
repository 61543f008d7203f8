// The machine the bench runs on: how busy it is, which process is workerd, CPU pinning, and the hardware
// and software versions the report names.
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cpus, release, totalmem } from "node:os";
import { ROOT } from "./constants.mjs";

/** Average number of cores busy on the whole machine over `ms`. */
export async function machineBusy(ms) {
  const sample = () => {
    const values = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    return { busy: total - values[3] - (values[4] ?? 0), total };
  };
  const a = sample();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = sample();
  return ((b.busy - a.busy) / (b.total - a.total)) * cpus().length;
}

/**
 * CPU affinity of a process and all its threads (--pin). On 2 cores this keeps workerd on a core of its own,
 * so that the load generator and the origin never preempt it.
 */
export function pinCpus(pid, list) {
  const result = spawnSync("taskset", ["-a", "-p", "-c", list, String(pid)], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`taskset -a -p -c ${list} ${pid} failed: ${result.stderr}`);
}

/** The workerd process Miniflare started (a child of this process). */
export function workerdChildPid() {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && comm.startsWith("workerd")) found.push(Number(entry));
    } catch {
      // Process ended meanwhile.
    }
  }
  if (found.length !== 1) throw new Error(`expected one workerd child process, found ${found.length}`);
  return found[0];
}

export function versions() {
  const pkg = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  const workerd = spawnSync(join(ROOT, "node_modules/.bin/workerd"), ["--version"], { encoding: "utf8" }).stdout.trim();
  const git = (...a) => spawnSync("git", a, { cwd: ROOT, encoding: "utf8" }).stdout.trimEnd();
  return {
    node: process.version,
    workerd: `${workerd} (npm workerd ${pkg("workerd")})`,
    miniflare: pkg("miniflare"),
    wrangler: pkg("wrangler"),
    hono: pkg("hono"),
    jose: pkg("jose"),
    autocannon: pkg("autocannon"),
    esbuild: pkg("esbuild"),
    commit: git("rev-parse", "--short", "HEAD"),
    dirty: git("status", "--porcelain", "--", "src", "wrangler.toml")
      .split("\n")
      .filter(Boolean)
      .map((line) => line.slice(3)),
  };
}

export function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const mhz = cpuinfo.match(/^cpu MHz\s*:\s*(.*)$/m)?.[1];
  const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout.trim();
  return { nproc, model, mhz, memGiB: totalmem() / 2 ** 30, kernel: release() };
}
