// `npm run bench`: measures Portcullis inside workerd on loopback and writes bench/RESULTS.md.
//
// Everything runs on this machine, in one run:
//   - this process: the builds, the loopback origin and issuer (JWKS) servers, Miniflare (which runs one
//     workerd process), the cold-start timing and the report;
//   - workerd (spawned by Miniflare): every Worker under test, each in its own isolate, each on its own
//     loopback port through Miniflare's direct sockets (no Miniflare entry/proxy worker in the path);
//   - bench/load.mjs, one child process per measurement: autocannon, the load generator.
// Rows: (1) baseline pass-through, (2) Portcullis with the verified-token cache off, (3) with it on,
// (4) hono/jwk with jwks_uri, (4b) hono/jwk with keys cached by user code, (5) bare crypto.subtle.verify,
// (6) cold start of a fresh workerd whose KV already holds the JWKS. See bench/RESULTS.md for the method.
//
// Options (all optional): --rounds N (3), --duration S (3), --warmup S (0.5), --prime S (2),
// --connections C (10), --cold N (5), --only REGEX (row ids, for debugging; no RESULTS.md is written),
// --profile ROW_ID (CPU-profiles that row's isolate through workerd's inspector and prints where the time goes;
// no RESULTS.md is written), --diagnose (adds rows that price the parts of a Portcullis request: Portcullis
// without its log line, and SHA-256 / console.log / timer / Request copy inside workerd; writes
// bench/DIAGNOSE.md instead of bench/RESULTS.md), --pin (taskset: workerd on CPU 1, the rest on CPU 0).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

if (Number(process.versions.node.split(".")[0]) < 22) {
  console.error(`bench: wrangler and miniflare need Node >= 22, this is ${process.version}. Use \`npm run bench\`, which runs the project's Node 24.`);
  process.exit(1);
}

const { build } = await import("esbuild");
const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
const jose = await import("jose");

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BENCH = join(ROOT, "bench");
const OUT = join(BENCH, ".out");
const RESULTS = join(BENCH, process.argv.includes("--diagnose") ? "DIAGNOSE.md" : "RESULTS.md");

// ---------------------------------------------------------------------------------------------- options
const args = process.argv.slice(2);
function option(name, fallback) {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = args[index + 1];
  if (value === undefined) throw new Error(`--${name} needs a value`);
  return typeof fallback === "number" ? Number(value) : value;
}
const KNOWN = { valued: ["rounds", "duration", "warmup", "prime", "connections", "cold", "only", "profile"], flags: ["diagnose", "pin"] };
for (let i = 0; i < args.length; i++) {
  const name = args[i].replace(/^--/, "");
  if (KNOWN.valued.includes(name)) i++;
  else if (!KNOWN.flags.includes(name)) {
    console.error(`bench: unknown option ${args[i]} (see the comment at the top of bench/run.mjs)`);
    process.exit(2);
  }
}
const SETTINGS = {
  rounds: option("rounds", 3),
  duration: option("duration", 3),
  warmup: option("warmup", 0.5),
  prime: option("prime", 2),
  connections: option("connections", 10),
  coldRepeats: option("cold", 5),
};
const PROFILE = option("profile", "");
const DIAGNOSE = args.includes("--diagnose");
// --pin: workerd on its own core, everything else (this process, the load generator) on the other; see
// pinCpus(). Off by default: on the machine this was written on it did not reduce the run-to-run spread.
const PIN = args.includes("--pin") && cpus().length >= 2 && spawnSync("taskset", ["-V"]).status === 0;
const ONLY = PROFILE ? `^${PROFILE}$` : option("only", "");
const onlyRe = ONLY ? new RegExp(ONLY) : undefined;

const ALGS = ["RS256", "ES256", "EdDSA"];
const VERIFY_N = [1, 50];
const DIAGNOSTIC_OPS = ["digest", "log", "timer", "request"];
const AUDIENCE = "https://api.bench.example";
const SCOPE = "api:read";
const PATH = "/v1/items/42";
const started = Date.now();
const say = (line) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}`);

const cleanups = [];
async function cleanup() {
  while (cleanups.length) await cleanups.pop()().catch(() => {});
}
process.on("SIGINT", () => void cleanup().finally(() => process.exit(130)));
process.on("SIGTERM", () => void cleanup().finally(() => process.exit(143)));

try {
  await main();
} catch (error) {
  console.error(`\nbench failed: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}

async function main() {
  const schema = readFileSync(join(ROOT, "src/config/schema.ts"), "utf8");
  if (!/\btoken_cache\b/.test(schema)) {
    throw new Error("src/config/schema.ts has no token_cache field yet: rows 2 and 3 need `token_cache = { enabled = false }`.");
  }
  const loadBefore = loadavg();
  const idleCheck = await machineBusy(1000);
  if (idleCheck > 0.3) say(`warning: the machine is already busy (${idleCheck.toFixed(2)} cores in use before the bench started): expect noisy numbers`);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });

  // ------------------------------------------------------------------------------------------ builds
  say("bundling Portcullis with wrangler deploy --dry-run ...");
  const bundle = wranglerBundle();
  say(`Portcullis bundle: ${bundle.uploadKiB} KiB, gzip ${bundle.gzipKiB} KiB (wrangler's numbers)`);
  const scripts = await bundleBenchWorkers();

  // ---------------------------------------------------------------------------- keys, tokens, servers
  const keys = await makeKeys();
  const issuerServer = await startIssuer(keys.jwks);
  const originServer = await startOrigin();
  cleanups.push(() => closeServer(issuerServer.server), () => closeServer(originServer.server));
  const ISSUER = issuerServer.url;
  const tokens = await makeTokens(keys, ISSUER);
  const jwksUri = (who) => `${ISSUER}/jwks.json?w=${who}`;

  // ------------------------------------------------------------------------------- the Workers under test
  const compatibilityDate = readFileSync(join(ROOT, "wrangler.toml"), "utf8").match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1];
  const compatibilityFlags = JSON.parse(readFileSync(join(ROOT, "wrangler.toml"), "utf8").match(/^compatibility_flags\s*=\s*(\[[^\]]*\])/m)?.[1] ?? "[]");
  const portcullisConfig = (who, tokenCache, extra = {}) => ({
    realm: "bench",
    issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], jwks_uri: jwksUri(who), algorithms: ALGS }],
    routes: [{ path: "/v1/**", methods: ["GET"], scopes: [SCOPE] }],
    ...(tokenCache === undefined ? {} : { token_cache: tokenCache }),
    ...extra,
  });
  const honoBindings = (who, keysMode, verify) => ({
    ORIGIN_URL: originServer.url,
    JWKS_URI: jwksUri(who),
    ISSUER,
    AUDIENCE,
    SCOPE,
    KEYS_MODE: keysMode,
    VERIFY: verify,
  });
  const workerSpecs = [
    { name: "baseline", script: scripts.baseline, bindings: { ORIGIN_URL: originServer.url } },
    { name: "pc-nocache", script: bundle.script, bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("pc-nocache", { enabled: false }) }, kv: "kv-pc-nocache" },
    // The cache's defaults (enabled, max_entries, max_ttl): the field is left out, as a user would.
    { name: "pc-cache", script: bundle.script, bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("pc-cache", undefined) }, kv: "kv-pc-cache" },
    // The cache's defaults again, without a log line per allowed request (`log.allowed = false`).
    { name: "pc-quiet", script: bundle.script, bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("pc-quiet", undefined, { log: { allowed: false } }) }, kv: "kv-pc-quiet" },
    { name: "hono", script: scripts.hono, bindings: honoBindings("hono", "jwks_uri", "full") },
    { name: "hono-cached", script: scripts.hono, bindings: honoBindings("hono-cached", "cached", "full") },
    { name: "hono-probe-typ-only", script: scripts.hono, bindings: honoBindings("probe", "jwks_uri", "typ_only") },
    { name: "hono-probe-defaults", script: scripts.hono, bindings: honoBindings("probe", "jwks_uri", "none") },
    { name: "verify", script: scripts.verify, bindings: { VECTORS: keys.vectors(tokens) } },
    // Diagnostics (--diagnose): Portcullis from src/ with a no-op logger.
    { name: "pc-nolog-nocache", script: scripts.nolog, bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("pc-nolog-nocache", { enabled: false }) }, kv: "kv-pc-nolog-nocache" },
    { name: "pc-nolog-cache", script: scripts.nolog, bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("pc-nolog-cache", undefined) }, kv: "kv-pc-nolog-cache" },
    // Diagnostics (--diagnose): the floor, the unavoidable operations of a gate with no checks at all.
    { name: "floor-cache", script: scripts.floor, bindings: { ORIGIN_URL: originServer.url, VECTORS: keys.vectors(tokens), FLOOR: "cache" } },
    { name: "floor-verify", script: scripts.floor, bindings: { ORIGIN_URL: originServer.url, VECTORS: keys.vectors(tokens), FLOOR: "verify" } },
  ];
  for (const spec of workerSpecs) spec.port = await freePort();
  const portOf = Object.fromEntries(workerSpecs.map((spec) => [spec.name, spec.port]));

  const logs = { current: undefined, lines: 0 };
  const inspectorPort = PROFILE ? await freePort() : undefined;
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: 0,
      ...(inspectorPort ? { inspectorPort } : {}),
      cf: false,
      telemetry: { enabled: false },
      handleStructuredLogs: (log) => tallyLog(logs, log),
      workers: workerSpecs.map((spec) => ({
        name: spec.name,
        modules: true,
        scriptPath: spec.script,
        compatibilityDate,
        compatibilityFlags,
        bindings: spec.bindings,
        ...(spec.kv ? { kvNamespaces: { PORTCULLIS_KV: spec.kv } } : {}),
        unsafeDirectSockets: [{ host: "127.0.0.1", port: spec.port }],
      })),
    }),
  );
  cleanups.push(() => mf.dispose());
  await mf.ready;
  const workerdPid = workerdChildPid();
  say(`workerd (pid ${workerdPid}) is serving ${workerSpecs.length} Workers; issuer ${ISSUER}, origin ${originServer.url}`);
  if (PIN) {
    pinCpus(workerdPid, "1");
    pinCpus(process.pid, "0");
    cleanups.push(async () => pinCpus(process.pid, `0-${cpus().length - 1}`));
    say("pinned workerd to CPU 1, this process and the load generator to CPU 0");
  }

  // -------------------------------------------------------------------------------- functional checks
  const probes = await functionalChecks({ portOf, tokens, originServer, issuerServer });
  say("functional checks passed");

  // ------------------------------------------------------------------------------------------ the rows
  const bearer = (alg) => ({ authorization: `Bearer ${tokens.valid[alg]}` });
  const rows = [
    { id: "baseline", group: "1", name: "baseline pass-through (no auth)", worker: "baseline", alg: "-", headers: bearer("ES256") },
    ...ALGS.map((alg) => ({ id: `pc-nocache-${alg}`, group: "2", name: "Portcullis, token cache off", worker: "pc-nocache", alg, headers: bearer(alg) })),
    ...ALGS.map((alg) => ({ id: `pc-cache-${alg}`, group: "3", name: "Portcullis, token cache on, same token", worker: "pc-cache", alg, headers: bearer(alg) })),
    ...ALGS.map((alg) => ({ id: `pc-quiet-${alg}`, group: "3b", name: "Portcullis, token cache on, same token, log.allowed = false", worker: "pc-quiet", alg, headers: bearer(alg) })),
    ...ALGS.map((alg) => ({ id: `hono-${alg}`, group: "4", name: "hono/jwk, jwks_uri (as documented)", worker: "hono", alg, headers: bearer(alg) })),
    ...ALGS.map((alg) => ({ id: `hono-cached-${alg}`, group: "4b", name: "hono/jwk, keys cached by user code", worker: "hono-cached", alg, headers: bearer(alg) })),
    ...ALGS.flatMap((alg) =>
      VERIFY_N.map((n) => ({ id: `verify-${alg}-${n}`, group: "5", name: `crypto.subtle.verify x${n} per request`, worker: "verify", alg, n, path: `/?alg=${alg}&n=${n}`, headers: {} })),
    ),
    ...(DIAGNOSE
      ? [
          { id: "pc-nolog-nocache-ES256", group: "D", name: "Portcullis from src/, no-op logger, token cache off", worker: "pc-nolog-nocache", alg: "ES256", headers: bearer("ES256") },
          { id: "pc-nolog-cache-ES256", group: "D", name: "Portcullis from src/, no-op logger, token cache on", worker: "pc-nolog-cache", alg: "ES256", headers: bearer("ES256") },
          { id: "floor-verify-ES256", group: "D", name: "floor, no checks: one crypto.subtle.verify + header copy + forward", worker: "floor-verify", alg: "ES256", headers: bearer("ES256") },
          { id: "floor-cache-ES256", group: "D", name: "floor, no checks: SHA-256 + Map lookup + header copy + forward", worker: "floor-cache", alg: "ES256", headers: bearer("ES256") },
          ...DIAGNOSTIC_OPS.flatMap((op) =>
            VERIFY_N.map((n) => ({ id: `op-${op}-${n}`, group: "D", name: `${op} x${n} per request`, worker: "verify", alg: "-", n, op, path: `/?op=${op}&n=${n}`, headers: { authorization: `Bearer ${tokens.valid.ES256}` } })),
          ),
        ]
      : []),
  ].filter((row) => !onlyRe || onlyRe.test(row.id));
  for (const row of rows) row.runs = [];
  if (PROFILE) {
    if (rows.length !== 1) throw new Error(`--profile: no row ${PROFILE}`);
    await profileRow(rows[0], { port: portOf[rows[0].worker], inspectorPort, workerdPid });
    return;
  }

  // The machine's speed drifts by 10-20 % over tens of seconds (a shared VM), so every round measures one
  // block per algorithm, each with its own baseline: the rows a ratio compares are measured within ~30 s.
  let blocks = ALGS.map((alg) => ({ alg, rows: rows.filter((row) => row.id === "baseline" || row.alg === alg || (alg === "ES256" && row.alg === "-")) }));
  blocks = blocks.filter((block) => block.rows.some((row) => row.id !== "baseline"));
  if (!blocks.length) blocks = [{ alg: "-", rows }];
  const schedule = blocks.flatMap((block) => block.rows.map((row) => ({ row, block: block.alg })));
  const slots = SETTINGS.rounds * schedule.length;
  const estimate = slots * (SETTINGS.warmup + SETTINGS.duration + 0.45) + rows.length * (SETTINGS.prime - SETTINGS.warmup);
  say(`${rows.length} rows, ${schedule.length} measurements per round, ${SETTINGS.rounds} rounds of ${SETTINGS.duration} s, ${SETTINGS.connections} connections (about ${Math.round(estimate)} s)`);
  const primed = new Set();
  for (let round = 1; round <= SETTINGS.rounds; round++) {
    for (const { row, block } of schedule) {
      logs.current = row.tally ??= { lines: 0, decisions: 0, via: {}, events: {} };
      const result = await runLoad({
        url: `http://127.0.0.1:${portOf[row.worker]}${row.path ?? PATH}`,
        headers: row.headers,
        connections: SETTINGS.connections,
        // The first warm-up of each row primes its isolate (first JWKS fetch, key imports, JIT).
        warmup: primed.has(row.id) ? SETTINGS.warmup : SETTINGS.prime,
        duration: SETTINGS.duration,
        pids: { workerd: workerdPid, bench: process.pid },
      });
      primed.add(row.id);
      result.round = round;
      result.block = block;
      logs.current = undefined;
      if (result.non2xx || result.errors || result.timeouts) {
        throw new Error(`${row.id}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
      }
      row.runs.push(result);
      say(
        `round ${round} ${row.id.padEnd(22)} ${fmt(result.rps, 0).padStart(6)} req/s  p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms  ` +
          `workerd ${fmt(result.cpu.workerd, 2)} cores, ${fmt((result.cpu.workerdSeconds / result.requests) * 1e6, 1)} us/req; load ${fmt(result.cpu.load, 2)}, bench ${fmt(result.cpu.bench, 2)}, machine ${fmt(result.cpu.machine, 2)}/${fmt(result.cpu.machineCapacity, 1)}`,
      );
    }
  }
  const jwksDuringRows = { ...issuerServer.fetches };
  if (PIN) await cleanups.pop()(); // back to every CPU before the cold starts
  await mf.dispose();
  cleanups.pop();

  // ---------------------------------------------------------------------------------------- cold start
  const cold = onlyRe && !onlyRe.test("cold") ? undefined : await coldStarts({ bundle, scripts, compatibilityDate, compatibilityFlags, portcullisConfig, originServer, issuerServer, tokens });

  // ------------------------------------------------------------------------------------------- report
  const loadAfter = loadavg();
  const analysis = analyse(rows);
  const report = renderReport({ rows, analysis, bundle, cold, probes, jwksDuringRows, loadBefore, loadAfter, idleCheck });
  if (onlyRe) {
    console.log(report);
    say("--only given: no report file written");
  } else {
    writeFileSync(RESULTS, report);
    say(`wrote ${RESULTS}`);
  }
  say(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// ================================================================================================ builds

/** wrangler's own bundle of src/worker.ts: `wrangler deploy --dry-run` on a copy of wrangler.toml whose
 * `main` points back at src/worker.ts, so that wrangler's scratch files stay in bench/.out. */
function wranglerBundle() {
  const configDir = join(OUT, "wrangler");
  const outdir = join(OUT, "portcullis");
  mkdirSync(configDir, { recursive: true });
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8").replace(/^main\s*=.*$/m, `main = ${JSON.stringify(join(ROOT, "src/worker.ts"))}`);
  writeFileSync(join(configDir, "wrangler.toml"), toml);
  const result = spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--config", join(configDir, "wrangler.toml"), "--outdir", outdir, "--env="],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_SEND_ERROR_REPORTS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    },
  );
  const output = `${result.stdout}\n${result.stderr}`;
  const sizes = output.match(/Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/);
  if (result.status !== 0 || !sizes) throw new Error(`wrangler deploy --dry-run failed:\n${output}`);
  const script = join(outdir, "worker.js");
  const source = readFileSync(script);
  return {
    script,
    uploadKiB: Number(sizes[1]),
    gzipKiB: Number(sizes[2]),
    bytes: source.length,
    ownGzipKiB: gzipSync(source, { level: 9 }).length / 1024,
    pathComments: (source.toString().match(/^\/\/ \.\.\/\.\.\/\.\.\//gm) ?? []).length,
  };
}

/** The bench's own Workers, bundled with the same esbuild settings wrangler uses for Workers. */
async function bundleBenchWorkers() {
  const entries = { baseline: "baseline.js", hono: "hono-jwk.js", verify: "verify.js", nolog: "portcullis-nolog.js", floor: "floor.js" };
  const scripts = {};
  for (const [name, file] of Object.entries(entries)) {
    const outfile = join(OUT, "workers", `${name}.mjs`);
    await build({
      entryPoints: [join(BENCH, "workers", file)],
      outfile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2024",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      // Same as wrangler.toml's `minify`, except under --profile (readable function names).
      minify: !PROFILE && /^minify\s*=\s*true/m.test(readFileSync(join(ROOT, "wrangler.toml"), "utf8")),
      logLevel: "warning",
    });
    scripts[name] = outfile;
  }
  return scripts;
}

// ========================================================================================= keys and tokens

async function makeKeys() {
  const pairs = {};
  for (const alg of ALGS) {
    pairs[alg] = await jose.generateKeyPair(alg, { extractable: true, ...(alg === "RS256" ? { modulusLength: 2048 } : {}) });
  }
  const publicJwks = {};
  for (const alg of ALGS) {
    publicJwks[alg] = { ...(await jose.exportJWK(pairs[alg].publicKey)), kid: `bench-${alg.toLowerCase()}`, alg, use: "sig" };
  }
  return {
    pairs,
    publicJwks,
    jwks: { keys: ALGS.map((alg) => publicJwks[alg]) },
    /** For the verify Worker: each algorithm's public key and one token's signing input and signature. */
    vectors: (tokens) =>
      Object.fromEntries(
        ALGS.map((alg) => {
          const [header, payload, signature] = tokens.valid[alg].split(".");
          return [alg, { jwk: publicJwks[alg], data: `${header}.${payload}`, signature }];
        }),
      ),
  };
}

/** RFC 9068 access tokens, valid for 6 hours, plus the bad ones the functional checks need. */
async function makeTokens(keys, issuer) {
  const now = Math.floor(Date.now() / 1000);
  const mint = (alg, overrides = {}) =>
    new jose.SignJWT({ scope: SCOPE, client_id: "bench-client", ...overrides.claims })
      .setProtectedHeader({ alg, typ: "at+jwt", kid: `bench-${alg.toLowerCase()}` })
      .setIssuer(overrides.iss ?? issuer)
      .setAudience(overrides.aud ?? AUDIENCE)
      .setSubject("bench-user")
      .setIssuedAt(now)
      .setJti(crypto.randomUUID())
      .setExpirationTime(now + 6 * 3600)
      .sign(keys.pairs[alg].privateKey);
  const valid = {};
  for (const alg of ALGS) valid[alg] = await mint(alg);
  return {
    valid,
    wrongAudience: await mint("ES256", { aud: "https://someone-else.example" }),
    wrongIssuer: await mint("ES256", { iss: "https://evil.example" }),
    noScope: await mint("ES256", { claims: { scope: "api:other" } }),
  };
}

// ================================================================================================ servers

/** The issuer: serves the JWKS (max-age 3600) and counts fetches by the `w` query parameter. */
async function startIssuer(jwks) {
  const body = JSON.stringify(jwks);
  const fetches = {};
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname !== "/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    const who = url.searchParams.get("w") ?? "?";
    fetches[who] = (fetches[who] ?? 0) + 1;
    res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=3600", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  const port = await listen(server);
  return { server, url: `http://127.0.0.1:${port}`, fetches };
}

/** The origin: a small JSON answer; keeps the last request's headers for the functional checks. */
async function startOrigin() {
  const state = { requests: 0, last: undefined };
  const body = '{"ok":true}';
  const server = createServer((req, res) => {
    state.requests++;
    state.last = req.headers;
    req.resume();
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  const port = await listen(server);
  return { server, url: `http://127.0.0.1:${port}`, state };
}

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
}

function closeServer(server) {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Average number of cores busy on the whole machine over `ms`. */
async function machineBusy(ms) {
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

async function freePort() {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

/**
 * CPU affinity of a process and all its threads (--pin). On 2 cores this keeps workerd on a core of its own,
 * so that the load generator and the origin never preempt it.
 */
function pinCpus(pid, list) {
  const result = spawnSync("taskset", ["-a", "-p", "-c", list, String(pid)], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`taskset -a -p -c ${list} ${pid} failed: ${result.stderr}`);
}

/** The workerd process Miniflare started (a child of this process). */
function workerdChildPid() {
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

/** Worker console output: one JSON line per Portcullis decision. Counted per row, never printed. */
function tallyLog(logs, log) {
  logs.lines++;
  const tally = logs.current;
  if (!tally) return;
  tally.lines++;
  try {
    const entry = JSON.parse(log.message);
    if (entry.event === "decision") {
      tally.decisions++;
      const via = `${entry.outcome}${entry.via ? `/${entry.via}` : ""}`;
      tally.via[via] = (tally.via[via] ?? 0) + 1;
    } else if (entry.event) {
      tally.events[entry.event] = (tally.events[entry.event] ?? 0) + 1;
    }
  } catch {
    tally.events["(not json)"] = (tally.events["(not json)"] ?? 0) + 1;
  }
}

// ======================================================================================== measurements

/** One load-generator process: warm-up, then the measured window. */
function runLoad(job) {
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

/** One request on a fresh connection, timed from here (outside workerd). */
function timedRequest(port, path, headers) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function get(port, path, headers = {}) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

async function functionalChecks({ portOf, tokens, originServer }) {
  const failures = [];
  const expect = async (what, port, path, headers, status, extra) => {
    const response = await get(port, path, headers);
    if (response.status !== status) failures.push(`${what}: ${response.status} (expected ${status}) ${response.body.slice(0, 200)}`);
    else if (extra) {
      const problem = extra(response);
      if (problem) failures.push(`${what}: ${problem}`);
    }
    return response;
  };
  const bearer = (token) => ({ authorization: `Bearer ${token}` });
  const forwardedIdentity = () => {
    const seen = originServer.state.last ?? {};
    if (seen["x-auth-sub"] !== "bench-user" || seen["x-auth-scope"] !== SCOPE) return `origin saw ${JSON.stringify(seen)}`;
    if (seen.authorization) return "the Authorization header reached the origin";
    return undefined;
  };

  await expect("baseline", portOf.baseline, PATH, {}, 200);
  for (const worker of ["pc-nocache", "pc-cache", "pc-quiet", "pc-nolog-nocache", "pc-nolog-cache"]) {
    for (const alg of ALGS) await expect(`${worker} ${alg} valid`, portOf[worker], PATH, bearer(tokens.valid[alg]), 200, forwardedIdentity);
    await expect(`${worker} no token`, portOf[worker], PATH, {}, 401);
    await expect(`${worker} wrong aud`, portOf[worker], PATH, bearer(tokens.wrongAudience), 401);
    await expect(`${worker} wrong iss`, portOf[worker], PATH, bearer(tokens.wrongIssuer), 401);
    await expect(`${worker} no scope`, portOf[worker], PATH, bearer(tokens.noScope), 403);
  }
  for (const worker of ["hono", "hono-cached"]) {
    for (const alg of ALGS) await expect(`${worker} ${alg} valid`, portOf[worker], PATH, bearer(tokens.valid[alg]), 200);
    await expect(`${worker} no token`, portOf[worker], PATH, {}, 401);
    await expect(`${worker} wrong aud`, portOf[worker], PATH, bearer(tokens.wrongAudience), 401);
    await expect(`${worker} wrong iss`, portOf[worker], PATH, bearer(tokens.wrongIssuer), 401);
    await expect(`${worker} no scope`, portOf[worker], PATH, bearer(tokens.noScope), 403);
  }
  for (const alg of ALGS) {
    for (const n of VERIFY_N) await expect(`verify ${alg} n=${n}`, portOf.verify, `/?alg=${alg}&n=${n}`, {}, 200);
  }
  for (const op of DIAGNOSTIC_OPS) await expect(`op ${op}`, portOf.verify, `/?op=${op}&n=2`, bearer(tokens.valid.ES256), 200);
  for (const worker of ["floor-cache", "floor-verify"]) await expect(`${worker} ES256 valid`, portOf[worker], PATH, bearer(tokens.valid.ES256), 200);
  await expect("floor-verify forged", portOf["floor-verify"], PATH, bearer(`${tokens.valid.ES256.slice(0, -6)}AAAAAA`), 401);
  if (failures.length) throw new Error(`functional checks failed:\n  ${failures.join("\n  ")}`);

  // What hono/jwk does when configured without (or with less than) the full `verification` object: recorded
  // for the report, not required.
  const probe = async (worker, token) => (await get(portOf[worker], PATH, bearer(token))).status;
  return {
    typOnly: {
      valid: await probe("hono-probe-typ-only", tokens.valid.ES256),
      wrongAudience: await probe("hono-probe-typ-only", tokens.wrongAudience),
      wrongIssuer: await probe("hono-probe-typ-only", tokens.wrongIssuer),
    },
    defaults: { valid: await probe("hono-probe-defaults", tokens.valid.ES256) },
  };
}

/**
 * Row 6. A first Miniflare instance with KV persistence verifies one token (fetching the JWKS and writing it
 * to KV), then is disposed. Each repetition then starts a fresh workerd on the same persistence directory and
 * times, from here, its first request (a fresh isolate: config parse, KV read, key import, verification,
 * forwarding) and a second one for comparison. The issuer's counter shows whether the JWKS was fetched again.
 */
async function coldStarts({ bundle, scripts, compatibilityDate, compatibilityFlags, portcullisConfig, originServer, issuerServer, tokens }) {
  const persist = join(OUT, "kv-persist");
  rmSync(persist, { recursive: true, force: true });
  const instance = async (port, baseline = false) => {
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        host: "127.0.0.1",
        port: 0,
        cf: false,
        telemetry: { enabled: false },
        resourcePersistencePath: persist,
        handleStructuredLogs: () => {},
        workers: [
          baseline
            ? {
                name: "baseline",
                modules: true,
                scriptPath: scripts.baseline,
                compatibilityDate,
                compatibilityFlags,
                bindings: { ORIGIN_URL: originServer.url },
                unsafeDirectSockets: [{ host: "127.0.0.1", port }],
              }
            : {
                name: "portcullis",
                modules: true,
                scriptPath: bundle.script,
                compatibilityDate,
                compatibilityFlags,
                bindings: { ORIGIN_URL: originServer.url, PORTCULLIS_CONFIG: portcullisConfig("cold", undefined) },
                kvNamespaces: { PORTCULLIS_KV: "kv-cold" },
                unsafeDirectSockets: [{ host: "127.0.0.1", port }],
              },
        ],
      }),
    );
    return mf;
  };

  say("cold start: seeding KV with a first instance ...");
  const port = await freePort();
  const seed = await instance(port);
  await seed.ready;
  const first = await timedRequest(port, PATH, { authorization: `Bearer ${tokens.valid.ES256}` });
  if (first.status !== 200) throw new Error(`cold start seed request: ${first.status} ${first.body}`);
  const kv = await seed.getKVNamespace("PORTCULLIS_KV");
  for (let i = 0; i < 100 && !(await kv.list({ prefix: "jwks:v2:" })).keys.length; i++) await new Promise((r) => setTimeout(r, 50));
  const seeded = (await kv.list({ prefix: "jwks:v2:" })).keys.length;
  await seed.dispose();
  if (!seeded) throw new Error("cold start: the first instance wrote no jwks:v2:* entry to KV");
  const fetchesAfterSeed = issuerServer.fetches.cold ?? 0;

  const results = {};
  // "-": the baseline Worker, for reference (what any first request of a fresh workerd costs here).
  for (const alg of ["-", ...ALGS]) {
    results[alg] = [];
    for (let i = 0; i < SETTINGS.coldRepeats; i++) {
      const t0 = performance.now();
      const mf = await instance(port, alg === "-");
      try {
        await mf.ready;
        const ready = performance.now() - t0;
        const headers = { authorization: `Bearer ${tokens.valid[alg] ?? tokens.valid.ES256}` };
        const one = await timedRequest(port, PATH, headers);
        const two = await timedRequest(port, PATH, headers);
        if (one.status !== 200 || two.status !== 200) throw new Error(`cold start ${alg}: ${one.status}/${two.status} ${one.body}`);
        results[alg].push({ ready, first: one.ms, second: two.ms });
      } finally {
        await mf.dispose();
      }
    }
    say(`cold start ${alg === "-" ? "baseline" : alg}: first request median ${fmt(median(results[alg].map((r) => r.first)), 1)} ms, second ${fmt(median(results[alg].map((r) => r.second)), 1)} ms`);
  }
  return { results, fetchesAfterSeed, fetchesDuringColdRuns: (issuerServer.fetches.cold ?? 0) - fetchesAfterSeed };
}

// ============================================================================================= profile

/** --profile: V8 CPU profile of one row's isolate under load, through workerd's inspector. */
async function profileRow(row, { port, inspectorPort, workerdPid }) {
  const { WebSocket } = await import("ws");
  const job = (warmup, duration) => ({
    url: `http://127.0.0.1:${port}${row.path ?? PATH}`,
    headers: row.headers,
    connections: SETTINGS.connections,
    warmup,
    duration,
    pids: { workerd: workerdPid, bench: process.pid },
  });
  say(`priming ${row.id} ...`);
  await runLoad(job(SETTINGS.prime, 1));
  const socket = new WebSocket(`ws://127.0.0.1:${inspectorPort}/core:user:${row.worker}`);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let id = 0;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  const result = await runLoad(job(0, SETTINGS.duration));
  const { result: { profile } } = await send("Profiler.stop");
  socket.close();
  const file = join(OUT, `${row.id}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  say(`${row.id} under the profiler: ${fmt(result.rps, 0)} req/s; profile written to ${file} (open in Chrome DevTools)`);

  // Self and inclusive time per function (name + bundle location), from the samples.
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const label = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url ? url.split("/").pop() : "";
    return `${functionName || "(anonymous)"}${file ? ` ${file}:${lineNumber + 1}` : ""}`;
  };
  const self = new Map();
  const inclusive = new Map();
  let total = 0;
  profile.samples.forEach((sample, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const node = nodes.get(sample);
    self.set(label(node), (self.get(label(node)) ?? 0) + dt);
    const seen = new Set();
    for (let at = sample; at !== undefined; at = parent.get(at)) {
      const name = label(nodes.get(at));
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    }
  });
  const requests = result.requests;
  const top = (map, n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => `  ${fmt((us / total) * 100, 1).padStart(5)}%  ${fmt(us / requests, 1).padStart(7)} us/req  ${name}`)
      .join("\n");
  console.log(`\nsampled ${fmt(total / 1e6, 2)} s over ${requests} requests (${fmt(total / requests, 1)} us/req of isolate time incl. idle)\n`);
  console.log(`self time, top 40:\n${top(self, 40)}\n`);
  console.log(`inclusive time, top 60:\n${top(inclusive, 60)}\n`);
}

// ============================================================================================ analysis

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fmt(value, digits) {
  return value === undefined || Number.isNaN(value) ? "n/a" : value.toFixed(digits);
}

function analyse(rows) {
  for (const row of rows) {
    const rps = row.runs.map((run) => run.rps);
    row.rps = median(rps);
    row.spread = (Math.max(...rps) - Math.min(...rps)) / row.rps;
    row.p50 = median(row.runs.map((run) => run.latency.p50));
    row.p99 = median(row.runs.map((run) => run.latency.p99));
    // Microseconds of workerd CPU (all its threads) per completed request, from /proc.
    row.cpuUs = median(row.runs.map((run) => (run.cpu.workerdSeconds / run.requests) * 1e6));
    row.cores = {
      workerd: median(row.runs.map((run) => run.cpu.workerd)),
      load: median(row.runs.map((run) => run.cpu.load)),
      bench: median(row.runs.map((run) => run.cpu.bench)),
      other: median(row.runs.map((run) => run.cpu.machine - run.cpu.workerd - run.cpu.load - run.cpu.bench)),
      machine: median(row.runs.map((run) => run.cpu.machine)),
    };
  }
  const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
  const base = byId.baseline;
  const rounds = Array.from({ length: SETTINGS.rounds }, (_, i) => i + 1);
  const cpuOf = (run) => (run.cpu.workerdSeconds / run.requests) * 1e6;
  const runAt = (row, round, block) => row?.runs.find((run) => run.round === round && (block === undefined || run.block === block));
  // Everything below is computed per round from runs measured close together (the same algorithm block),
  // then summarised as the median over the rounds, with the range.
  const summarise = (values) => {
    const clean = values.filter((value) => value !== undefined && Number.isFinite(value));
    return clean.length ? { median: median(clean), min: Math.min(...clean), max: Math.max(...clean) } : undefined;
  };
  const perOp = (one, many, round) => {
    const a = runAt(one, round);
    const b = runAt(many, round);
    return a && b ? { us: ((1 / b.rps - 1 / a.rps) * 1e6) / 49, cpuUs: (cpuOf(b) - cpuOf(a)) / 49 } : undefined;
  };
  const verifyAt = {};
  const verify = {};
  for (const alg of ALGS) {
    const one = byId[`verify-${alg}-1`];
    const many = byId[`verify-${alg}-50`];
    if (!one || !many) continue;
    verifyAt[alg] = Object.fromEntries(rounds.map((round) => [round, perOp(one, many, round)]));
    const per = Object.values(verifyAt[alg]).filter(Boolean);
    verify[alg] = { us: summarise(per.map((v) => v.us))?.median, cpuUs: summarise(per.map((v) => v.cpuUs))?.median };
  }
  const ratios = {};
  for (const alg of ALGS) {
    const entry = (ratios[alg] = {});
    for (const kind of ["pc-nocache", "pc-cache", "pc-quiet", "hono", "hono-cached"]) {
      const row = byId[`${kind}-${alg}`];
      if (!row || !base || !verifyAt[alg]) continue;
      const per = rounds
        .map((round) => {
          const r = runAt(row, round);
          const b = runAt(base, round, alg);
          const v = verifyAt[alg][round];
          if (!r || !b || !v) return undefined;
          const us = (1 / r.rps - 1 / b.rps) * 1e6;
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
    const versus = (a, b) =>
      summarise(
        rounds.map((round) => {
          const x = runAt(byId[`${a}-${alg}`], round);
          const y = runAt(byId[`${b}-${alg}`], round);
          return x && y ? x.rps / y.rps : undefined;
        }),
      );
    entry.vsHono = {
      nocache: versus("pc-nocache", "hono"),
      cache: versus("pc-cache", "hono"),
      nocacheVsCached: versus("pc-nocache", "hono-cached"),
      cacheVsCached: versus("pc-cache", "hono-cached"),
    };
  }
  const ops = {};
  for (const op of DIAGNOSTIC_OPS) {
    const one = byId[`op-${op}-1`];
    const many = byId[`op-${op}-50`];
    if (!one || !many) continue;
    const per = rounds.map((round) => perOp(one, many, round)).filter(Boolean);
    ops[op] = { us: summarise(per.map((x) => x.us)).median, cpuUs: summarise(per.map((x) => x.cpuUs)).median };
  }
  // Diagnostics: Portcullis with vs without its log line, and without it vs the baseline, paired per round.
  const pairs = {};
  // One paired difference per round: a minus b, from throughput and from workerd CPU.
  const paired = (a, b, block) => {
    const per = (value) => summarise(rounds.map((round) => {
      const x = runAt(a, round, block);
      const y = runAt(b, round, block);
      return x && y ? value(x, y) : undefined;
    }));
    return { us: per((x, y) => (1 / x.rps - 1 / y.rps) * 1e6), cpuUs: per((x, y) => cpuOf(x) - cpuOf(y)) };
  };
  for (const kind of ["nocache", "cache"]) {
    const quiet = byId[`pc-nolog-${kind}-ES256`];
    const loud = byId[`pc-${kind}-ES256`];
    if (quiet && loud) pairs[`log-${kind}`] = paired(loud, quiet);
    if (quiet && base) pairs[`nolog-${kind}`] = paired(quiet, base, "ES256");
  }
  for (const mode of ["verify", "cache"]) {
    const floor = byId[`floor-${mode}-ES256`];
    if (floor && base) pairs[`floor-${mode}`] = paired(floor, base, "ES256");
  }
  return { byId, verify, ratios, ops, pairs };
}

// ============================================================================================== report

function versions() {
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

function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const mhz = cpuinfo.match(/^cpu MHz\s*:\s*(.*)$/m)?.[1];
  const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout.trim();
  return { nproc, model, mhz, memGiB: totalmem() / 2 ** 30, kernel: release() };
}

function renderReport({ rows, analysis, bundle, cold, probes, jwksDuringRows, loadBefore, loadAfter, idleCheck }) {
  const v = versions();
  const m = machine();
  const { byId, verify, ratios } = analysis;
  const lines = [];
  const out = (line = "") => lines.push(line);
  const pass = (value, target) => (value === undefined || Number.isNaN(value) ? "n/a" : value <= target ? "meets" : "misses");

  out("# Portcullis benchmark results");
  out();
  out(`Generated by \`npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}\` (bench/run.mjs). Do not edit by hand: re-run instead.`);
  out();
  out(`- Date: ${new Date().toISOString()}`);
  out(`- Machine: ${m.nproc} cores (\`nproc\`), CPU \`${m.model}\`${m.mhz ? ` (${Math.round(Number(m.mhz))} MHz)` : ""}, ${m.memGiB.toFixed(1)} GiB memory, Linux ${m.kernel}`);
  out(`- Load average (1/5/15 min) before: ${loadBefore.map((x) => x.toFixed(2)).join(" / ")}, after: ${loadAfter.map((x) => x.toFixed(2)).join(" / ")}; CPU in use by other processes in the second before the run: ${idleCheck.toFixed(2)} cores`);
  out(`- Node ${v.node}; workerd ${v.workerd}; miniflare ${v.miniflare}; wrangler ${v.wrangler}; hono ${v.hono}; jose ${v.jose}; autocannon ${v.autocannon}; esbuild ${v.esbuild}`);
  out(`- Portcullis source: commit ${v.commit}${v.dirty.length ? ` plus uncommitted changes in ${v.dirty.join(", ")}` : ""}`);
  out(`- Settings: ${SETTINGS.connections} connections, ${SETTINGS.rounds} rounds; per row and round ${SETTINGS.warmup} s warm-up (${SETTINGS.prime} s the first time) then ${SETTINGS.duration} s measured; the table shows the median of the rounds${PIN ? "; workerd pinned to CPU 1, the bench process and load generator to CPU 0" : ""}`);
  out(`- Total run time: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  out();

  out("## Summary");
  out();
  const summary = [];
  for (const alg of ALGS) {
    const off = ratios[alg]["pc-nocache"];
    const on = ratios[alg]["pc-cache"];
    const quiet = ratios[alg]["pc-quiet"];
    if (!off && !on) continue;
    summary.push(
      `- ${alg}: one verification costs ${fmt(verify[alg]?.us, 1)} µs (${fmt(verify[alg]?.cpuUs, 1)} µs of workerd CPU). Portcullis adds ${fmt(off?.us, 0)} µs per request with the cache off, ratio (a) ${fmt(off?.ratio, 2)} (target 1.25: ${pass(off?.ratio, 1.25)}; from CPU time ${fmt(off?.cpuRatio, 2)}), and ${fmt(on?.us, 0)} µs with the cache on, ratio ${fmt(on?.ratio, 2)} (target 0.25: ${pass(on?.ratio, 0.25)}; from CPU time ${fmt(on?.cpuRatio, 2)})${quiet ? `; cache on without the per-request log line (log.allowed = false): ${fmt(quiet.us, 0)} µs, ratio ${fmt(quiet.ratio, 2)}` : ""}. Throughput vs hono/jwk (jwks_uri): ${fmt(ratios[alg].vsHono.nocache?.median, 2)}x cache off, ${fmt(ratios[alg].vsHono.cache?.median, 2)}x cache on; vs hono/jwk with user-cached keys: ${fmt(ratios[alg].vsHono.nocacheVsCached?.median, 2)}x and ${fmt(ratios[alg].vsHono.cacheVsCached?.median, 2)}x.`,
    );
  }
  summary.push(`- Bundle: gzip ${bundle.gzipKiB} KiB (target 64 KiB: ${bundle.gzipKiB <= 64 ? "meets" : "misses"}).`);
  if (cold) {
    const firsts = ALGS.map((alg) => median(cold.results[alg].map((x) => x.first)));
    const reference = median(cold.results["-"].map((x) => x.first));
    summary.push(`- Cold start with the JWKS in KV: first request ${firsts.map((x) => fmt(x, 1)).join(" / ")} ms (${ALGS.join(" / ")}, medians; the baseline Worker's first request: ${fmt(reference, 1)} ms), ${cold.fetchesDuringColdRuns} JWKS fetches by the fresh instances.`);
  }
  const pcFetches = ["pc-nocache", "pc-cache", "pc-quiet"].map((w) => jwksDuringRows[w] ?? 0);
  summary.push(`- JWKS fetches by the three Portcullis Workers during all rows: ${pcFetches.join(", ")} (one isolate each); hono/jwk with jwks_uri: ${jwksDuringRows.hono ?? 0} (one per request).`);
  const noisy = rows.filter((row) => row.cores.other > 0.25);
  if (noisy.length) summary.push(`- Noise: other processes used more than 0.25 of a core during ${noisy.length} of ${rows.length} rows (see the CPU table); throughput-based numbers are affected, the workerd-CPU columns much less.`);
  for (const line of summary) out(line);
  out();

  out("## Throughput and latency");
  out();
  out("Requests per second and latency from autocannon (latency has 1 ms resolution). \"spread\" is (max - min) / median of the rounds' req/s. \"workerd CPU\" is the CPU time of the workerd process (all threads, from /proc) per completed request.");
  out();
  out("| row | what | alg | req/s | spread | p50 ms | p99 ms | workerd CPU µs/req |");
  out("|---|---|---|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    out(`| ${row.group} | ${row.name} | ${row.alg} | ${fmt(row.rps, 0)} | ${fmt(row.spread * 100, 1)}% | ${row.p50} | ${row.p99} | ${fmt(row.cpuUs, 1)} |`);
  }
  if (cold) {
    for (const alg of ALGS) {
      const r = cold.results[alg];
      const firsts = r.map((x) => x.first);
      out(`| 6 | cold start: first request of a fresh workerd, JWKS in KV (p50 = median, p99 column = slowest of ${r.length}) | ${alg} | | | ${fmt(median(firsts), 1)} | ${fmt(Math.max(...firsts), 1)} | |`);
    }
  }
  out();

  out("## Bare signature verification inside workerd (row 5)");
  out();
  out("Per verification = (1/req/s at n=50 - 1/req/s at n=1) / 49, per round, median of the rounds; the same from workerd CPU time as a cross-check.");
  out();
  out("| alg | µs per verify (throughput) | µs per verify (workerd CPU) |");
  out("|---|---:|---:|");
  for (const alg of ALGS) out(`| ${alg} | ${fmt(verify[alg]?.us, 1)} | ${fmt(verify[alg]?.cpuUs, 1)} |`);
  out();

  out("## Ratios");
  out();
  out("(a) Authorizer overhead per request = 1/req/s(row) - 1/req/s(baseline), divided by the bare cost of one verification for the same algorithm. Targets: <= 1.25 with the cache off (row 2), <= 0.25 with the cache on (row 3). Computed per round from the baseline and verify rows of the same algorithm block (measured within about 30 s of the row), then the median of the rounds, with the range in brackets. The CPU columns compute the same from workerd CPU µs/request instead of throughput.");
  out();
  out("| alg | row | overhead µs/req (throughput) | ratio (a) [range] | target | | overhead µs/req (workerd CPU) | ratio (a), CPU [range] |");
  out("|---|---|---:|---:|---:|---|---:|---:|");
  const range = (r) => (r ? ` [${fmt(r.min, 2)}-${fmt(r.max, 2)}]` : "");
  const labels = { "pc-nocache": ["2 Portcullis, cache off", 1.25], "pc-cache": ["3 Portcullis, cache on", 0.25], "pc-quiet": ["3b Portcullis, cache on, log.allowed = false"], hono: ["4 hono/jwk (jwks_uri)"], "hono-cached": ["4b hono/jwk (keys cached)"] };
  for (const alg of ALGS) {
    for (const [kind, [label, target]] of Object.entries(labels)) {
      const r = ratios[alg][kind];
      if (!r) continue;
      out(`| ${alg} | ${label} | ${fmt(r.us, 1)} | ${fmt(r.ratio, 2)}${range(r.ratioRange)} | ${target ?? ""} | ${target ? pass(r.ratio, target) : ""} | ${fmt(r.cpuUs, 1)} | ${fmt(r.cpuRatio, 2)}${range(r.cpuRatioRange)} |`);
    }
  }
  out();
  out("(b) Portcullis throughput / hono/jwk throughput, per algorithm (per round within the algorithm block; median [range]).");
  out();
  out("| alg | cache off / hono (jwks_uri) | cache on / hono (jwks_uri) | cache off / hono (keys cached) | cache on / hono (keys cached) |");
  out("|---|---:|---:|---:|---:|");
  for (const alg of ALGS) {
    const b = ratios[alg].vsHono;
    const cell = (x) => (x ? `${fmt(x.median, 2)}${range(x)}` : "n/a");
    out(`| ${alg} | ${cell(b.nocache)} | ${cell(b.cache)} | ${cell(b.nocacheVsCached)} | ${cell(b.cacheVsCached)} |`);
  }
  out();

  const { ops } = analysis;
  if (byId["pc-nolog-nocache-ES256"] || Object.keys(ops).length) {
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
    const { pairs } = analysis;
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

  out("## Bundle size");
  out();
  out(`\`wrangler deploy --dry-run\` of src/worker.ts: ${bundle.uploadKiB} KiB, **gzip ${bundle.gzipKiB} KiB** against the 64 KiB target (${bundle.gzipKiB <= 64 ? "meets" : "misses"}). gzip -9 of the same file here: ${bundle.ownGzipKiB.toFixed(2)} KiB.${bundle.pathComments ? ` (wrangler runs on a copy of wrangler.toml in bench/.out, so the bundle's ${bundle.pathComments} path comments are 9 bytes longer each than in \`npm run build\`: ${(bundle.pathComments * 9 / 1024).toFixed(1)} KiB raw, less gzipped.)` : ""}`);
  out();

  out("## JWKS fetches seen by the issuer");
  out();
  out("| Worker | fetches during rows 1-5 | expected |");
  out("|---|---:|---|");
  const requestsOf = (worker) => rows.filter((row) => row.worker === worker).length;
  const expectations = {
    "pc-nocache": "1 (one isolate; KV and memory afterwards)",
    "pc-cache": "1",
    "pc-quiet": "1",
    hono: "one per request: hono/jwk fetches jwks_uri on every request",
    "hono-cached": "1 (user code caches the keys)",
    probe: "functional probes only",
  };
  for (const [who, expected] of Object.entries(expectations)) {
    if (who !== "probe" && !requestsOf(who)) continue;
    out(`| ${who} | ${jwksDuringRows[who] ?? 0} | ${expected} |`);
  }
  if (cold) {
    out(`| cold start, seeding instance | ${cold.fetchesAfterSeed} | 1 |`);
    out(`| cold start, ${ALGS.length * SETTINGS.coldRepeats} fresh Portcullis instances | ${cold.fetchesDuringColdRuns} | 0 (keys come from KV) |`);
  }
  out();

  if (cold) {
    out("## Cold start (row 6)");
    out();
    out("Each repetition starts a fresh workerd (Miniflare) on a KV persistence directory that a first, disposed instance filled by verifying one token. Times are measured from this process, each request on a new TCP connection. \"ready\" is Miniflare start until workerd accepts connections: workerd compiles and evaluates the Worker's module during this, before the first request (checked: a top-level busy loop in a Worker lengthens \"ready\", not the first request). Portcullis's first request then pays for config validation and app construction, the KV read, the checks and trial imports of every JWKS key, the key import for the algorithm, the verification and the forwarding. The baseline Worker's first request is the reference for what any first request of a fresh workerd costs here.");
    out();
    out("| Worker | alg | ready ms (median) | first request ms (median, min-max) | second request ms (median) |");
    out("|---|---|---:|---:|---:|");
    for (const alg of ["-", ...ALGS]) {
      const r = cold.results[alg];
      const firsts = r.map((x) => x.first);
      out(`| ${alg === "-" ? "baseline pass-through (reference)" : "Portcullis"} | ${alg} | ${fmt(median(r.map((x) => x.ready)), 0)} | ${fmt(median(firsts), 1)} (${fmt(Math.min(...firsts), 1)}-${fmt(Math.max(...firsts), 1)}) | ${fmt(median(r.map((x) => x.second)), 1)} |`);
    }
    out();
  }

  out("## CPU use during the measured windows");
  out();
  out("Average cores busy (median of the rounds; 1.00 = one core). workerd runs the Workers' JavaScript on one thread, so about 1.0 means the row was limited by workerd; \"other\" is everything else on the machine (other users' processes included).");
  out();
  out("| row | alg | workerd | load generator | bench process (origin, issuer, logs) | other | machine |");
  out("|---|---|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    const c = row.cores;
    out(`| ${row.group} ${row.name} | ${row.alg}${row.n ? ` n=${row.n}` : ""} | ${fmt(c.workerd, 2)} | ${fmt(c.load, 2)} | ${fmt(c.bench, 2)} | ${fmt(c.other, 2)} | ${fmt(c.machine, 2)} |`);
  }
  out();

  out("## Checks");
  out();
  out("Before measuring, every Worker answered as expected: 200 for each valid token (Portcullis: the origin received `x-auth-sub`, `x-auth-scope` and no `Authorization`), 401 without a token and for a wrong `aud` or `iss`, 403 without the scope; the verify Worker answered 200 (all signatures valid). Every measured request was 2xx (a row with any non-2xx, error or timeout aborts the run).");
  out();
  out("Portcullis decision log lines counted during the Portcullis rows (outcome/via):");
  out();
  for (const row of rows.filter((r) => r.worker.startsWith("pc-") && !r.worker.startsWith("pc-nolog"))) {
    const t = row.tally ?? { via: {}, events: {} };
    const requests = row.runs.reduce((sum, run) => sum + run.requests, 0);
    out(`- ${row.id}: ${Object.entries(t.via).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}${Object.keys(t.events).length ? `; other events ${JSON.stringify(t.events)}` : ""} (measured requests ${requests}; counts include warm-ups)`);
  }
  out();
  if (probes) {
    out("hono/jwk defaults, probed with the same tokens: ");
    out(`- with \`verification: { typ: "at+jwt" }\` only: valid token ${probes.typOnly.valid}, wrong \`aud\` ${probes.typOnly.wrongAudience}, wrong \`iss\` ${probes.typOnly.wrongIssuer} (so \`iss\` and \`aud\` are checked only when configured in \`verification\`);`);
    out(`- with no \`verification\` at all: a valid RFC 9068 token (\`typ: at+jwt\`) gets ${probes.defaults.valid} (hono accepts only \`typ\` JWT or none by default).`);
    out("- Rows 4 and 4b therefore configure `verification: { iss, aud, typ: \"at+jwt\" }` plus a scope check on `jwtPayload.scope`, so every row refuses the same tokens.");
    out();
  }

  out("## Method");
  out();
  out("- One workerd process (Miniflare's Node API, `convertV4MiniflareOptions`) serves every Worker of rows 1-5, each in its own isolate and on its own loopback port through `unsafeDirectSockets`, so requests reach the Worker without Miniflare's entry worker. Miniflare rather than `wrangler dev`: no dev proxy worker in front, exact control of ports, bindings, KV persistence and process lifetime, and the workerd PID for CPU accounting.");
  out("- Portcullis is wrangler's own bundle (`wrangler deploy --dry-run --outdir`) of src/worker.ts with the compatibility date of wrangler.toml; `PORTCULLIS_CONFIG` is a JSON binding (as `[vars]` tables are), `ORIGIN_URL` a text binding, `PORTCULLIS_KV` a KV namespace per Worker. Config: one issuer (the loopback issuer, audience `https://api.bench.example`, algorithms RS256/ES256/EdDSA), route `GET /v1/**` needing scope `api:read`; row 2 adds `token_cache = { enabled = false }`, row 3 leaves the cache at its defaults.");
  out("- The bench Workers (bench/workers/) are bundled with esbuild with wrangler's settings (ESM, conditions workerd/worker/browser). The baseline and hono Workers forward like Portcullis: a new Request to ORIGIN_URL with the same path and query.");
  out("- Tokens: RFC 9068 (`typ: at+jwt`, iss, aud, sub, client_id, scope, iat, exp in 6 h, jti), minted with jose for an RSA-2048, a P-256 and an Ed25519 key; the same token is sent on every request of a row. The issuer and the origin are Node HTTP servers in the bench process; the JWKS is served with `max-age=3600`.");
  out("- Load: autocannon in a separate process per measurement (bench/load.mjs), keep-alive connections, fixed duration. Each round runs one block per algorithm: baseline, verify n=1, verify n=50, Portcullis cache off, cache on, hono/jwk, hono/jwk with cached keys (the diagnostic rows, if any, in the ES256 block). The baseline is thus measured once per block (its table row is the median of all those runs), and every ratio is computed from rows measured within about 30 s of each other, because this VM's speed drifts by 10-20 % over tens of seconds even when it is otherwise idle. The first warm-up of each row is longer and primes its isolate (first JWKS fetch, key imports, JIT).");
  out("- Verification cost: the verify Worker (bench/workers/verify.js) imports each key once and runs `crypto.subtle.verify` n times sequentially on a token's real signing input and signature. The clock inside workerd does not advance while JavaScript runs, so all times are taken outside: from throughput differences, and from workerd's CPU time in /proc.");
  out("- Overhead from throughput assumes each row is limited by workerd (see the CPU table); the workerd-CPU column does not depend on that assumption and is less sensitive to other load on the machine.");
  out();
  out("## Re-running");
  out();
  out("```sh");
  out("npm run bench                                   # rewrites bench/RESULTS.md (about 5 minutes on 2 cores)");
  out("npm run bench -- --rounds 5 --duration 10           # longer: other settings are --warmup, --prime, --connections, --cold");
  out("npm run bench -- --only 'baseline|pc-nocache-ES256' # a few rows; prints the report instead of writing it");
  out("npm run bench -- --diagnose                         # adds the diagnostic rows; writes bench/DIAGNOSE.md");
  out("npm run bench -- --diagnose --profile pc-nolog-cache-ES256 # V8 CPU profile of one row's isolate (bench/.out/*.cpuprofile)");
  out("npm run bench -- --pin                              # workerd on CPU 1, load generator and servers on CPU 0 (taskset)");
  out("```");
  out();
  out("Run it on an otherwise idle machine: the load generator, the origin and workerd share the same cores, and anything else running (see \"other\" in the CPU table) lowers throughput.");
  out();
  return lines.join("\n");
}
