// `npm run check:package` (run by .ci/run): the package as a user gets it. Packs this repository (`npm pack`,
// which builds build/ first), installs the tarball into a fresh Worker project in a temporary folder
// (Portcullis from the tarball; hono, jose, wrangler, @cloudflare/workers-types, @types/node and typescript
// from the registry, through the npm cache), and proves from that project's node_modules:
//   types    its declarations typecheck, without skipLibCheck, with the default @cloudflare/workers-types and
//            with the types `wrangler types` generates; portcullis/origin's also in a Node project
//   dev      a Hono Worker mounting the middleware as the README shows serves under `wrangler dev`: a valid
//            token reaches the handler with the identity header, no token is 401 with the RFC 6750 challenge
//   origin   the assertion the gate signed for a forwarded request verifies with portcullis/origin in plain
//            Node 20 and in Node 22+ (and a tampered copy does not); the root entry loads in both
// Keys are generated here and given to the Worker as static keys: no network beyond loopback and the
// registry. One PASS/FAIL line per check; exit 1 on any failure. Temporary folder and processes are removed.
//
//   npm run check:package     NODE20=/path/to/node (v20.x; default: a Node 20 on PATH or /usr/bin), HONO=4.0.0 (hono)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const started = Date.now();
const repo = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
/** The repository's own Node 24 (the `node` devDependency): wrangler 4 needs Node 22+. */
const NODE24 = join(ROOT, "node_modules/node/bin/node");
const NODE20 = findNode20();
const dir = mkdtempSync(join(tmpdir(), "portcullis-package-"));
const fixture = join(dir, "fixture");
// npm, tsc and wrangler on the repository's Node 24, as `npm run` would; never the repository's node_modules/.bin.
const env = {
  ...process.env,
  PATH: [join(ROOT, "node_modules/node/bin"), ...(process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules"))].join(delimiter),
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};
for (const name of Object.keys(env)) if (name.startsWith("npm_")) delete env[name]; // not this repo's npm run

const ISSUER = "https://issuer.fixture.test";
const AUDIENCE = "https://api.fixture.test";
const GATE = { issuer: "https://gate.fixture.test", audience: "fixture-origin" };

let failed = 0;
let wrangler;
let origin;
/** What wrangler dev printed: the Worker's log lines name the reason of a refusal or a 500. */
const wranglerOutput = [];

// --- the checks ---

async function pack() {
  const out = run("npm", ["pack", "--pack-destination", dir, "--json", "--silent"], { cwd: ROOT });
  const [report] = JSON.parse(out.slice(out.indexOf("[")));
  const files = report.files.map((file) => file.path);
  // Every file an `exports` entry points at (types and JavaScript), and the adapter the root entry loads.
  const exported = Object.values(repo.exports)
    .flatMap((target) => (typeof target === "string" ? [target] : Object.values(target)))
    .map((target) => target.replace(/^\.\//, ""));
  const required = [...new Set([...exported, "build/hono.js"])];
  const missing = required.filter((file) => !files.includes(file));
  const sources = files.filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts"));
  const stray = files.filter((file) => !file.startsWith("build/") && !["package.json", "README.md", "LICENSE"].includes(file));
  if (missing.length || sources.length || stray.length) throw new Error(`missing ${missing}; sources ${sources}; unexpected ${stray}`);
  return { path: join(dir, report.filename), detail: `${report.filename}, ${files.length} files, ${(report.size / 1024).toFixed(0)} KiB` };
}

async function install(tarball, keys) {
  writeFixture(tarball.path, keys);
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: fixture });
  const installed = (name) => `${name} ${JSON.parse(readFileSync(join(fixture, "node_modules", name, "package.json"), "utf8")).version}`;
  return { detail: `${tarball.detail}; ${installed("hono")}, ${installed("wrangler")}` };
}

function tsc(project) {
  return runAsync(NODE24, [join(fixture, "node_modules/typescript/bin/tsc"), "-p", project]);
}

/** The keys of this run: the issuer's (signs access tokens) and the gate's (signs assertions). */
async function generateKeys() {
  const token = await generateKeyPair("ES256", { extractable: true });
  const assertion = await generateKeyPair("EdDSA", { extractable: true });
  return {
    token: token.privateKey,
    tokenJwk: { ...(await exportJWK(token.publicKey)), kid: "token-key", alg: "ES256" },
    signingJwk: { ...(await exportJWK(assertion.privateKey)), kid: "gate-key" },
  };
}

/** Starts `wrangler dev` on the fixture (on Node 24); resolves once it serves, with its URL. */
async function startWorker() {
  const port = await freePort();
  wrangler = spawn(
    NODE24,
    [join(fixture, "node_modules/wrangler/bin/wrangler.js"), "dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(await freePort()), "--show-interactive-dev-session=false"],
    { cwd: fixture, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  for (const stream of [wrangler.stdout, wrangler.stderr]) stream.on("data", (chunk) => wranglerOutput.push(String(chunk)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000; // beside the type checks on a busy machine
  let exited = false;
  wrangler.once("exit", () => (exited = true));
  for (;;) {
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (exited || Date.now() > deadline) throw new Error(`${exited ? "exited" : "no answer in 90 s"}\n${wranglerOutput.join("").slice(-3000)}`);
    await sleep(250);
  }
  return { url };
}

async function validToken({ url }, { token }) {
  const response = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${await mint(token)}`, "x-auth-sub": "spoofed" } });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`status ${response.status}: ${body}\n${workerLogs()}`);
  // The client's own x-auth-sub is replaced by the verified one before the handler runs.
  const seen = JSON.parse(body);
  if (seen.header !== "user-123" || seen.subject !== "user-123") throw new Error(`the handler saw ${body}`);
}

async function noToken({ url }) {
  const response = await fetch(`${url}/v1/me`);
  const challenge = response.headers.get("www-authenticate");
  await response.body?.cancel();
  if (response.status !== 401 || challenge !== 'Bearer realm="fixture", scope="api:read"') throw new Error(`status ${response.status}, WWW-Authenticate ${challenge}`);
}

async function forward({ url }, { token }) {
  const response = await fetch(`${url}/origin/items/7?view=full`, { headers: { authorization: `Bearer ${await mint(token)}` } });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`status ${response.status}: ${body}\n${workerLogs()}`);
  const request = origin.seen.at(-1);
  if (!request?.headers["x-portcullis-assertion"]) throw new Error("the origin got no assertion");
  const keys = await fetch(`${url}/.well-known/portcullis-keys.json`).then((r) => r.json());
  return { request, keys };
}

/** Runs the fixture's verify.mjs (portcullis/origin from node_modules) under `node` on the forwarded request. */
async function verifyIn(node, forwarded) {
  if (!forwarded) throw new Error("no forwarded request to verify (the check before failed)");
  if (!node) throw new Error("no Node 20 found: set NODE20=/path/to/node (v20.x)");
  const input = JSON.stringify({ ...forwarded, ...GATE });
  const result = spawnSync(node, ["verify.mjs"], { cwd: fixture, input, encoding: "utf8", env });
  if (result.status !== 0) throw new Error(`exit ${result.status}: ${result.stdout}${result.stderr}`);
  const report = JSON.parse(result.stdout);
  if (report.sub !== "user-123" || report.tampered !== "headers_mismatch" || report.rootExports < 10) throw new Error(`got ${result.stdout}`);
  return { detail: `sub ${report.sub}, a tampered copy: ${report.tampered}` };
}

// --- the fixture project ---

function writeFixture(tarball, keys) {
  mkdirSync(join(fixture, "src"), { recursive: true });
  const dev = repo.devDependencies;
  const json = (name, value) => writeFileSync(join(fixture, name), `${JSON.stringify(value, null, 2)}\n`);
  json("package.json", {
    name: "portcullis-fixture",
    private: true,
    type: "module",
    // HONO=4.x tries another hono within the peer range (the default: the version this repository uses).
    dependencies: { portcullis: `file:${tarball}`, hono: process.env.HONO ?? dev.hono, jose: repo.dependencies.jose },
    devDependencies: { wrangler: dev.wrangler, "@cloudflare/workers-types": dev["@cloudflare/workers-types"], "@types/node": dev["@types/node"], typescript: dev.typescript },
  });
  json("wrangler.json", { name: "portcullis-fixture", main: "src/index.ts", compatibility_date: wranglerCompatibilityDate() });
  // What `npm create cloudflare` sets up, made strict; skipLibCheck off so the package's .d.ts are checked.
  const compilerOptions = {
    target: "ES2022",
    module: "ES2022",
    moduleResolution: "Bundler",
    lib: ["ES2022"],
    types: ["@cloudflare/workers-types"],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    verbatimModuleSyntax: true,
    isolatedModules: true,
    noEmit: true,
    skipLibCheck: false,
  };
  json("tsconfig.json", { compilerOptions, include: ["src"] });
  // The set-up Cloudflare documents for `wrangler types`: its generated file instead of @cloudflare/workers-types.
  json("tsconfig.wrangler.json", { compilerOptions: { ...compilerOptions, types: ["./worker-configuration.d.ts"] }, include: ["src", "worker-configuration.d.ts"] });
  json("tsconfig.origin.json", { compilerOptions: { ...compilerOptions, module: "NodeNext", moduleResolution: "NodeNext", types: ["node"] }, include: ["origin.ts"] });
  writeFileSync(join(fixture, "origin.ts"), ORIGIN_TS);
  writeFileSync(join(fixture, "verify.mjs"), VERIFY_MJS);
  writeFileSync(join(fixture, "src/index.ts"), workerSource(keys.tokenJwk, origin.url));
  // Single quotes: .dev.vars (dotenv) takes them literally; in double quotes a JSON's \" would stay escaped.
  writeFileSync(join(fixture, ".dev.vars"), `ASSERTION_KEYS='${JSON.stringify(keys.signingJwk)}'\n`);
}

/** The fixture Worker: the README's "Using it as Hono middleware", both forms. */
function workerSource(tokenJwk, originUrl) {
  return `import { Hono } from "hono";
import { createGate, formatIssues, forwardToOrigin, honoMiddleware, parseConfig, portcullis, type PortcullisConfig, type PortcullisVariables } from "portcullis";

const config: PortcullisConfig = {
  realm: "fixture",
  issuers: [{ issuer: ${JSON.stringify(ISSUER)}, audiences: [${JSON.stringify(AUDIENCE)}], algorithms: ["ES256"], keys: [${JSON.stringify(tokenJwk)}] }],
  routes: [
    { path: "/health", access: "public" },
    { path: "/v1/**", methods: ["GET"], scopes: ["api:read"] },
    { path: "/origin/**", methods: ["GET"], scopes: ["api:read"] },
  ],
  forward: { assertion: { issuer: ${JSON.stringify(GATE.issuer)}, audience: ${JSON.stringify(GATE.audience)}, signing_keys: "ASSERTION_KEYS" } },
};

const app = new Hono<{ Variables: PortcullisVariables }>();

// The middleware form: refused requests are answered by it; the handler sees the verified identity.
app.use("/health", portcullis(config));
app.get("/health", (c) => c.text("ok"));
app.use("/v1/*", portcullis(config));
app.get("/v1/me", (c) => c.json({ subject: c.get("portcullis").identity?.subject ?? null, header: c.req.header("x-auth-sub") ?? null }));

// The gate form: forwards exactly the authorized request to an origin, with the signed assertion.
const parsed = parseConfig(config);
if (!parsed.ok) throw new Error(formatIssues(parsed.issues).join("\\n"));
const gate = createGate(parsed.config);
app.use("/origin/*", honoMiddleware(gate));
app.use("/.well-known/*", honoMiddleware(gate));
app.all("/origin/*", forwardToOrigin(gate, new URL(${JSON.stringify(originUrl)})));

export default app;
`;
}

/** portcullis/origin typechecked as a Node (node:http) origin would use it. */
const ORIGIN_TS = `import { createServer } from "node:http";
import { createRemoteJWKSet } from "jose";
import { AssertionError, memoryReplayStore, verifyAssertion, type VerifiedAssertion } from "portcullis/origin";

const keys = createRemoteJWKSet(new URL("https://gate.example/.well-known/portcullis-keys.json"));
const replay = memoryReplayStore();
createServer(async (req, res) => {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
  const request = { method: req.method ?? "GET", url: \`http://\${req.headers.host ?? "localhost"}\${req.url ?? "/"}\`, headers };
  try {
    const identity: VerifiedAssertion = await verifyAssertion(request, { issuer: "https://gate.example", audience: "orders", keys, replay, target: req.url ?? "/" });
    res.end(identity.sub ?? "");
  } catch (error) {
    res.statusCode = error instanceof AssertionError ? 403 : 500;
    res.end();
  }
});
`;

/**
 * Reads { request, keys, issuer, audience } on stdin; verifies the request with portcullis/origin, then a copy
 * with an identity header changed (must fail); also loads the root entry. Plain JavaScript: runs in any Node.
 */
const VERIFY_MJS = `import { createLocalJWKSet } from "jose";
import { AssertionError, verifyAssertion } from "portcullis/origin";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { request, keys, issuer, audience } = JSON.parse(input);
const options = { issuer, audience, keys: createLocalJWKSet(keys), target: request.target };
const asReceived = (headers) => ({ method: request.method, url: "http://origin.fixture" + request.target, headers: new Headers(headers) });
const identity = await verifyAssertion(asReceived(request.headers), options);
let tampered = "accepted";
try {
  await verifyAssertion(asReceived({ ...request.headers, "x-auth-sub": "someone-else" }), options);
} catch (error) {
  tampered = error instanceof AssertionError ? error.code : String(error);
}
const root = await import("portcullis");
console.log(JSON.stringify({ sub: identity.sub, tampered, rootExports: Object.keys(root).length }));
`;

// --- helpers ---

/** The Worker's last JSON log lines (component portcullis), for failure messages. */
function workerLogs() {
  return wranglerOutput.join("").split("\n").filter((line) => line.includes('"component":"portcullis"')).slice(-5).join("\n");
}

/** A loopback origin that records each request as received: method, raw target, headers. */
async function startOrigin() {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method, target: req.url, headers: Object.fromEntries(Object.entries(req.headers).filter(([, v]) => typeof v === "string")) });
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, server };
}

function mint(key) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "user-123", client_id: "fixture-client", scope: "api:read", jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: "ES256", kid: "token-key", typ: "at+jwt" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(key);
}

/** Runs a command; throws with its output when it fails. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: fixture, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.status !== 0) throw new Error(`${[command, ...args].join(" ")}: exit ${result.status}\n${`${result.stdout}${result.stderr}`.slice(-4000)}`);
  return result.stdout;
}

/** `run` without blocking: the type checks run beside each other and beside wrangler dev. */
function runAsync(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: fixture, env, stdio: ["ignore", "pipe", "pipe"], ...options });
    const output = [];
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => output.push(String(chunk)));
    children.add(child);
    child.once("error", reject);
    child.once("close", (status) => {
      children.delete(child);
      if (status === 0) resolve(output.join(""));
      else reject(new Error(`${[command, ...args].join(" ")}: exit ${status}\n${output.join("").slice(-4000)}`));
    });
  });
}
const children = new Set();

/** Runs `fn` (started at once), then prints PASS/FAIL and its time when awaited: results print in order. */
function attempt(fn) {
  const t0 = Date.now();
  return Promise.resolve()
    .then(fn)
    .then(
      (result) => ({ ok: true, result, seconds: (Date.now() - t0) / 1000 }),
      (error) => ({ ok: false, error, seconds: (Date.now() - t0) / 1000 }),
    );
}

async function report(name, outcome) {
  const { ok, result, error, seconds } = await outcome;
  if (ok) {
    const detail = result && typeof result === "object" && "detail" in result ? ` (${result.detail})` : "";
    console.log(`PASS  ${name}${detail} [${seconds.toFixed(1)} s]`);
    return result;
  }
  failed++;
  console.log(`FAIL  ${name}\n      ${String(error instanceof Error ? error.message : error).replace(/\n/g, "\n      ")}`);
  return undefined;
}

const check = (name, fn) => report(name, attempt(fn));

class Skip extends Error {}

function findNode20() {
  const candidates = [process.env.NODE20, ...(process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules")).map((p) => join(p, "node")), "/usr/bin/node", "/usr/local/bin/node"];
  return candidates.find((node) => node && version(node).startsWith("20."));
}

function version(node) {
  try {
    return execFileSync(node, ["-p", "process.versions.node"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

function wranglerCompatibilityDate() {
  return /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))?.[1] ?? "2026-11-01";
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Signals wrangler's process group (wrangler and the workerd it started); false when none is left. */
function signalWrangler(signal) {
  if (!wrangler) return false;
  try {
    process.kill(-wrangler.pid, signal);
    return true;
  } catch {
    return false;
  }
}

function cleanup() {
  for (const child of children) child.kill("SIGKILL");
  if (signalWrangler("SIGTERM")) for (let i = 0; i < 50 && signalWrangler(0); i++) spawnSync("sleep", ["0.1"]);
  signalWrangler("SIGKILL");
  origin?.server.closeAllConnections();
  origin?.server.close();
  rmSync(dir, { recursive: true, force: true });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- run (last: everything above is initialized) ---

async function main() {
  process.on("exit", () => signalWrangler("SIGKILL"));
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => (cleanup(), process.exit(130)));

  try {
    const tarball = await check("npm pack: compiled JavaScript and declarations, no sources", pack);
    if (!tarball) throw new Skip();
    const keys = await generateKeys();
    origin = await startOrigin();
    if (!(await check("the fixture Worker project installs the tarball", () => install(tarball, keys)))) throw new Skip();
    // Started together (two processors do the type checks while workerd starts); reported in order.
    const typesDefault = attempt(() => tsc("tsconfig.json"));
    const typesGenerated = attempt(async () => {
      await runAsync(NODE24, [join(fixture, "node_modules/wrangler/bin/wrangler.js"), "types"]);
      await tsc("tsconfig.wrangler.json");
    });
    const typesOrigin = attempt(() => tsc("tsconfig.origin.json"));
    const starting = attempt(startWorker);
    await report("types: tsc --noEmit with @cloudflare/workers-types (no skipLibCheck)", typesDefault);
    await report("types: tsc --noEmit with `wrangler types` (no skipLibCheck)", typesGenerated);
    await report("types: portcullis/origin in a Node project (@types/node, NodeNext)", typesOrigin);
    const worker = await report("wrangler dev serves the fixture Worker", starting);
    if (!worker) throw new Skip();
    await check("wrangler dev: a valid token reaches the Hono handler with the identity header", () => validToken(worker, keys));
    await check("wrangler dev: no token is 401 with the RFC 6750 challenge", () => noToken(worker));
    const forwarded = await check("wrangler dev: the gate forwards with a signed assertion", () => forward(worker, keys));
    await check(`portcullis/origin verifies the gate's assertion in Node ${version(NODE20) || "20 (not found)"}`, () => verifyIn(NODE20, forwarded));
    await check(`portcullis/origin verifies the gate's assertion in Node ${version(NODE24)}`, () => verifyIn(NODE24, forwarded));
  } catch (error) {
    if (!(error instanceof Skip)) throw error;
  } finally {
    cleanup();
  }
  console.log(`check:package: ${failed ? `${failed} failed` : "all passed"} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failed) process.exit(1);
}

await main();
