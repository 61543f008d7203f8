// `npm start`: the local demo. Starts the demo issuer (:8790) and echo origin (:8791) on loopback, runs the
// Worker with `wrangler dev --env demo` (:8787), then prints curl commands to try.
// `npm start -- --check`: the same, but runs those requests itself, prints PASS/FAIL and exits (0 = all pass).
// Dev-only: nothing here is imported by src/ or bundled into the Worker.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createIssuer, ISSUER } from "./issuer.mjs";
import { createOrigin } from "./origin.mjs";

if (Number(process.versions.node.split(".")[0]) < 22) {
  console.error(`demo: wrangler needs Node >= 22, this is ${process.version}. Use \`npm start\`, which runs the project's Node 24.`);
  process.exit(1);
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WORKER = "http://127.0.0.1:8787";
const ORIGIN = "http://127.0.0.1:8791";
const CHECK = process.argv.includes("--check");
const READY_TIMEOUT_MS = 120_000;

/** A failure with a message meant for the user (no stack trace). */
class DemoError extends Error {}

const servers = [];
let wrangler;
let wranglerExited = false;
/** In --check mode wrangler's output is kept quiet and only shown when something fails. */
const wranglerLog = [];
let stopping;

process.on("SIGINT", () => void stop(130));
process.on("SIGTERM", () => void stop(143));
process.on("SIGHUP", () => void stop(129));
// Last resort (e.g. an uncaught error): never leave wrangler/workerd running behind us.
process.on("exit", () => wranglerExited || killWrangler("SIGKILL"));

main().catch((error) => {
  if (stopping) return; // Already shutting down (Ctrl-C during start-up): the error is a consequence.
  console.error(`\ndemo: ${error instanceof DemoError ? error.message : error.stack}`);
  void stop(1);
});

async function main() {
  const issuer = await createIssuer();
  await listen(issuer.server, 8790, "demo issuer");
  await listen(createOrigin(), 8791, "demo echo origin");
  await ensureFree(8787, "demo Worker, wrangler dev");
  console.log(`demo issuer      ${ISSUER}  (JWKS: ${ISSUER}/jwks.json, demo-only token endpoint: POST ${ISSUER}/token)`);
  console.log(`demo echo origin ${ORIGIN}`);
  console.log(`starting wrangler dev --env demo on ${WORKER} ...`);

  wrangler = startWrangler();
  await waitForWorker();

  const tokens = {
    read: await issuer.mint({ scope: "notes:read" }),
    write: await issuer.mint({ scope: "notes:read notes:write" }),
    // Issued two hours ago, expired one hour ago: well past the 30 s default clock tolerance.
    expired: await issuer.mint({ scope: "notes:read", ageSeconds: 7200, ttl: 3600 }),
  };
  if (CHECK) {
    const ok = await selfTest(tokens);
    console.log(ok ? "\nall checks passed" : "\nSOME CHECKS FAILED");
    await stop(ok ? 0 : 1);
  } else {
    printCurls(tokens);
  }
}

function listen(server, port, what) {
  return new Promise((resolve, reject) => {
    server.once("error", (error) =>
      reject(error.code === "EADDRINUSE" ? portInUse(port, what) : error),
    );
    server.listen(port, "127.0.0.1", () => {
      servers.push(server);
      resolve();
    });
  });
}

/** wrangler binds 8787 itself; probing first turns a busy port into a clear message instead of a wrangler error. */
async function ensureFree(port, what) {
  const probe = createServer();
  await listen(probe, port, what);
  servers.splice(servers.indexOf(probe), 1);
  await new Promise((resolve) => probe.close(resolve));
}

const portInUse = (port, what) =>
  new DemoError(`port ${port} on 127.0.0.1 (${what}) is already in use. Stop whatever is using it (another \`npm start\`?) and try again.`);

function startWrangler() {
  // The file node_modules/.bin/wrangler links to, run with this same Node (Node 24 under `npm run`).
  const bin = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
  const args = ["dev", "--env", "demo", "--ip", "127.0.0.1", "--port", "8787", "--show-interactive-dev-session=false"];
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: ROOT,
    // Everything runs offline: no telemetry, no error reports, no banner update check, no Request.cf download.
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_SEND_ERROR_REPORTS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group, so stop() can end wrangler together with the workerd it started.
    detached: process.platform !== "win32",
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      if (!CHECK) return console.log(`[wrangler] ${line}`);
      wranglerLog.push(`[wrangler] ${line}`);
      if (wranglerLog.length > 80) wranglerLog.shift();
    });
  }
  child.on("exit", (code, signal) => {
    wranglerExited = true;
    if (!stopping) {
      console.error(`\ndemo: wrangler dev exited unexpectedly (${signal ?? `code ${code}`})`);
      void stop(1);
    }
  });
  return child;
}

async function waitForWorker() {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (wranglerExited) throw new DemoError("wrangler dev exited before the Worker answered");
    try {
      const response = await fetch(`${WORKER}/public/x`, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
  throw new DemoError(`the Worker did not answer on ${WORKER}/public/x within ${READY_TIMEOUT_MS / 1000} s`);
}

/** Signals wrangler's whole process group (wrangler and the workerd it started). */
function killWrangler(signal) {
  if (!wrangler) return;
  try {
    if (process.platform === "win32") wrangler.kill(signal);
    else process.kill(-wrangler.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Idempotent: Ctrl-C during start-up, a second Ctrl-C, or a failure all end up here. */
function stop(code) {
  stopping ??= (async () => {
    if (wrangler && !wranglerExited) {
      const exited = new Promise((resolve) => wrangler.once("exit", resolve));
      // Let wrangler shut workerd down itself; force the whole group only if it hangs.
      wrangler.kill("SIGTERM");
      const timer = setTimeout(() => killWrangler("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    killWrangler("SIGTERM"); // Anything of wrangler's still running.
    await Promise.all(
      servers.map((server) => {
        server.closeAllConnections?.();
        return new Promise((resolve) => server.close(resolve));
      }),
    );
    if (code === 1 && wranglerLog.length) console.error(`\nlast wrangler output:\n${wranglerLog.join("\n")}`);
    if (code >= 128) console.error("\ndemo stopped");
    process.exit(code);
  })();
  return stopping;
}

/** The five demo requests, each with what it must show. */
function cases(tokens) {
  const bearer = (token) => ({ authorization: `Bearer ${token}` });
  const challenge = (response) => response.headers.get("www-authenticate") ?? "(none)";
  return [
    {
      title: "GET /notes/1 with a notes:read token",
      path: "/notes/1",
      headers: bearer(tokens.read),
      status: 200,
      check: (response, body) => {
        const seen = body?.auth_headers ?? {};
        const ok = seen["x-auth-sub"] === "alice" && seen["x-auth-name"] === "Alice Example" && seen["x-auth-scope"] === "notes:read";
        return [ok, `origin received ${JSON.stringify(seen)}`];
      },
    },
    {
      title: "POST /notes with a notes:read-only token",
      path: "/notes",
      method: "POST",
      headers: { ...bearer(tokens.read), "content-type": "application/json" },
      body: '{"text":"hello"}',
      status: 403,
      check: (response) => [/error="insufficient_scope"/.test(challenge(response)), `WWW-Authenticate: ${challenge(response)}`],
    },
    {
      title: "GET /notes/1 without a token",
      path: "/notes/1",
      status: 401,
      // RFC 6750 3.1: no credentials -> a challenge without an error code.
      check: (response) => [/^Bearer /.test(challenge(response)) && !/error=/.test(challenge(response)), `WWW-Authenticate: ${challenge(response)}`],
    },
    {
      title: "GET /notes/1 with an expired token",
      path: "/notes/1",
      headers: bearer(tokens.expired),
      status: 401,
      check: (response) => [/error="invalid_token"/.test(challenge(response)), `WWW-Authenticate: ${challenge(response)}`],
    },
    {
      title: "GET /public/x with a forged X-Auth-Sub: admin",
      path: "/public/x",
      headers: { "x-auth-sub": "admin" },
      status: 200,
      check: (response, body) => {
        const headers = body?.headers ?? {};
        const forged = Object.keys(headers).filter((name) => name.startsWith("x-auth-"));
        return [body !== undefined && forged.length === 0, forged.length ? `origin still received ${forged.join(", ")}` : "origin received no x-auth-* header: the forged one was stripped"];
      },
    },
  ];
}

async function selfTest(tokens) {
  let allPassed = true;
  const line = (ok, text) => {
    allPassed &&= ok;
    console.log(`    ${ok ? "PASS" : "FAIL"}  ${text}`);
  };
  console.log("\nself-test against the demo Worker:");
  for (const [i, test] of cases(tokens).entries()) {
    console.log(`\n[${i + 1}] ${test.title}`);
    try {
      const response = await fetch(WORKER + test.path, {
        method: test.method ?? "GET",
        headers: test.headers,
        body: test.body,
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: the checks below report what is missing.
      }
      const compact = text.trim().replace(/\s+/g, " ");
      console.log(`    -> ${response.status} ${compact.length > 160 ? `${compact.slice(0, 160)}...` : compact}`);
      line(response.status === test.status, `status ${response.status} (expected ${test.status})`);
      const [ok, detail] = test.check(response, body);
      line(ok, detail);
    } catch (error) {
      line(false, `request failed: ${error.message}`);
    }
  }
  return allPassed;
}

function printCurls(tokens) {
  const auth = (token) => ` -H 'Authorization: Bearer ${token}'`;
  const tries = [
    [`Valid token (scope notes:read) -> 200; the JSON shows the x-auth-* headers (sub, client-id, scope, issuer, name) the origin received.`,
      `curl -i ${WORKER}/notes/1${auth(tokens.read)}`],
    [`Token with only notes:read on POST (needs notes:write) -> 403, WWW-Authenticate: Bearer ... error="insufficient_scope", scope="notes:write".`,
      `curl -i -X POST ${WORKER}/notes -H 'Content-Type: application/json' -d '{"text":"hello"}'${auth(tokens.read)}`],
    [`No token -> 401 with a bare challenge: WWW-Authenticate: Bearer realm="portcullis-demo", scope="notes:read", resource_metadata=... (no error code).`,
      `curl -i ${WORKER}/notes/1`],
    [`Expired token -> 401, WWW-Authenticate: Bearer ... error="invalid_token".`,
      `curl -i ${WORKER}/notes/1${auth(tokens.expired)}`],
    [`Forged identity header on a public route -> 200; the origin's "headers" show no x-auth-sub: Portcullis stripped it.`,
      `curl -i ${WORKER}/public/x -H 'X-Auth-Sub: admin'`],
    [`Bonus: token with notes:write on POST -> 200, forwarded to the origin with its body.`,
      `curl -i -X POST ${WORKER}/notes -H 'Content-Type: application/json' -d '{"text":"hello"}'${auth(tokens.write)}`],
    [`Bonus: mint another token (demo-only endpoint, no client authentication) -> JSON with access_token.`,
      `curl -s ${ISSUER}/token --data-urlencode 'scope=notes:read notes:write'`],
  ];
  console.log("\nPortcullis demo is running. Try these (tokens are valid for 1 hour):\n");
  for (const [explain, command] of tries) console.log(`# ${explain}\n${command}\n`);
  console.log("Press Ctrl-C to stop everything.");
}
