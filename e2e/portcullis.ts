import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/**
 * Portcullis under wrangler's local runtime (`wrangler dev`, workerd), for the end-to-end suite. Each run gets
 * its own temporary directory with a generated wrangler config (src/worker.ts, the compatibility date of
 * wrangler.toml, a KV namespace, the DPoP replay store's Durable Object, the given vars), a `.dev.vars` beside it for the secrets, and its own
 * `--persist-to` state, so runs never share KV. Everything runs offline.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const READY_TIMEOUT_MS = 90_000;

/** One JSON log line of the Worker (`"component":"portcullis"`). */
export type LogLine = Record<string, unknown>;

export interface Portcullis {
  url: string;
  /** The Worker's JSON log lines, in order. */
  logs: LogLine[];
  /** Everything wrangler printed (the last 400 lines), for failure messages. */
  output: string[];
  /** Waits for a log line matching `predicate` (logs can trail the response a little). */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

export interface PortcullisOptions {
  vars: Record<string, unknown>;
  /** Secrets, written to `.dev.vars` next to the config (what `wrangler secret put` is in production). */
  secrets: Record<string, string>;
  /** The port to listen on (default a free one), for configurations that name the gate's own URL (`resource_metadata`). */
  port?: number;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function compatibilityDate(): Promise<string> {
  const toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
  const match = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml);
  if (!match?.[1]) throw new Error("wrangler.toml has no compatibility_date");
  return match[1];
}

/**
 * A separate process (its own group) that outlives this one: once the test process is gone, it ends wrangler's
 * process group (SIGTERM, then SIGKILL) and removes the run's directory. It exits by itself when the group is
 * gone. Arguments: test process pid, wrangler's process group, run directory.
 */
const WATCHDOG = `
const [testPid, group] = process.argv.slice(1, 3).map(Number);
const dir = process.argv[3];
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (error) { return error.code === "EPERM"; } };
const timer = setInterval(() => {
  if (!alive(-group)) process.exit(0);
  if (alive(testPid)) return;
  clearInterval(timer);
  try { process.kill(-group, "SIGTERM"); } catch {}
  setTimeout(() => {
    try { process.kill(-group, "SIGKILL"); } catch {}
    require("node:fs").rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }, 3000);
}, 250);
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startPortcullis(options: PortcullisOptions): Promise<Portcullis> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-e2e-"));
  const configPath = join(dir, "wrangler.json");
  await writeFile(
    configPath,
    JSON.stringify(
      {
        name: "portcullis-e2e",
        main: join(ROOT, "src", "worker.ts"),
        compatibility_date: await compatibilityDate(),
        kv_namespaces: [{ binding: "PORTCULLIS_KV", id: "e2e" }],
        // The DPoP replay store, as wrangler.toml declares it.
        durable_objects: { bindings: [{ name: "PORTCULLIS_DPOP", class_name: "DpopReplayStore" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["DpopReplayStore"] }],
        vars: options.vars,
      },
      null,
      2,
    ),
  );
  await writeFile(
    join(dir, ".dev.vars"),
    Object.entries(options.secrets)
      .map(([name, value]) => `${name}=${JSON.stringify(value)}\n`)
      .join(""),
  );

  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const bin = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
  const args = [
    bin,
    "dev",
    "-c",
    configPath,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspectorPort),
    "--persist-to",
    join(dir, "state"),
    "--show-interactive-dev-session=false",
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: dir,
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_SEND_ERROR_REPORTS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group: stop() ends wrangler together with the workerd it started.
    detached: true,
  });
  const pid = child.pid!;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const signalGroup = (signal: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false; // No process left in the group.
    }
  };
  // Never leave wrangler or workerd behind: on a normal exit without stop() (a failed hook), kill the group
  // now; if this process is killed instead (Ctrl-C, vitest ending its worker), the watchdog does it.
  const onExit = () => void signalGroup("SIGKILL");
  process.once("exit", onExit);
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG, String(process.pid), String(pid), dir], { detached: true, stdio: "ignore" });
  watchdog.unref();

  const logs: LogLine[] = [];
  const output: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      output.push(line);
      if (output.length > 400) output.shift();
      const start = line.indexOf("{");
      if (start < 0) return;
      try {
        const parsed = JSON.parse(line.slice(start)) as LogLine;
        if (parsed && parsed.component === "portcullis") logs.push(parsed);
      } catch {
        // Not a log line of the Worker.
      }
    });
  }

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (!exited) {
        signalGroup("SIGTERM");
        await Promise.race([exit, sleep(5_000)]);
      }
      // Whatever is left of the group (workerd, if wrangler did not take it down), then wait until it is gone.
      for (let i = 0; i < 50 && signalGroup(i === 0 ? "SIGKILL" : 0); i++) await sleep(100);
      process.removeListener("exit", onExit);
      watchdog.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    })());

  const portcullis: Portcullis = {
    url,
    logs,
    output,
    async waitForLog(predicate, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = logs.find(predicate);
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`no matching log line; last Worker logs:\n${logs.slice(-10).map((l) => JSON.stringify(l)).join("\n")}`);
        await sleep(25);
      }
    },
    stop,
  };

  // Ready = a public route answers 200, which needs a valid configuration and the origin reachable.
  // wrangler dev keeps running (watching src/) after a failed build, so that is detected from its output.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let problem = `no answer within ${READY_TIMEOUT_MS / 1000} s`;
  while (Date.now() < deadline) {
    if (exited) {
      problem = "wrangler dev exited";
      break;
    }
    if (output.some((line) => line.includes("[ERROR] Build failed"))) {
      problem = "the Worker failed to build";
      break;
    }
    try {
      const response = await fetch(`${url}/public/ready`, { signal: AbortSignal.timeout(2_000) });
      const text = await response.text();
      if (response.status === 200) return portcullis;
      problem = `GET /public/ready answered ${response.status} ${text}`;
      if (response.status === 500) break; // Invalid configuration: it will not get better.
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  const printed = output.slice(-40).join("\n");
  await stop();
  throw new Error(`wrangler dev did not become ready: ${problem}; its output:\n${printed}`);
}
