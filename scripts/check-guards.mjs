// `npm run check:guards` (run by .ci/run): the deploy guards refuse what they must, from outside, the way a
// user meets them: an invalid configuration stops `build`, a PORTCULLIS_CONFIG over the 5 KB platform limit
// is refused naming the limit and the file form, placeholders stop a real deploy, TOML and JSON errors keep
// line and column, route errors name the route, and the configuration file (portcullis.config.json, README
// "Configuration files") passes check-config and bundles into the Worker at any size, never together with
// the var. Each case writes a wrangler.toml (and configuration files) to a temporary folder and runs the
// real scripts. The 60-route fixture is scripts/fixtures/portcullis.config.60-routes.json. The last cases
// run Workers under workerd (`wrangler dev`, loopback only): the built bundle and `npm run dev` serve the
// file's routes, and a Worker whose bundled file skipped the check, or has the var too, fails closed.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = join(tmpdir(), `portcullis-guards-${process.pid}`);
const main = join(root, "src/worker.ts");
const issuer = `[[vars.PORTCULLIS_CONFIG.issuers]]\nissuer = "https://auth.acme.test/"\naudiences = ["https://api.acme.test"]\njwks_uri = "https://auth.acme.test/jwks"\n`;
// minify and keep_names as in the shipped wrangler.toml, so the bundle size printed is the one a user gets.
const head = `name = "guards"\nmain = "${main}"\ncompatibility_date = "2026-11-01"\nminify = true\nkeep_names = false\n`;
const toml = (body) => `${head}[vars]\nORIGIN_URL = "https://origin.acme.test"\n[vars.PORTCULLIS_CONFIG]\nrealm = "acme"\n${body}`;
/** A wrangler.toml for the file form: only ORIGIN_URL in [vars] (plus `extra`). */
const fileToml = (extra = "") => `${head}[vars]\nORIGIN_URL = "https://origin.acme-saas.test"\n${extra}`;
const route = (i) => `[[vars.PORTCULLIS_CONFIG.routes]]\nname = "orders resource ${i}"\npath = "/v1/orders${i}/:id/items/**"\nmethods = ["GET"]\nscopes = ["orders:read", "orders:items:read"]\n`;

const sixtyText = readFileSync(join(root, "scripts/fixtures/portcullis.config.60-routes.json"), "utf8");
const sixty = JSON.parse(sixtyText);
const withBadRoute = structuredClone(sixty);
withBadRoute.routes[17].path = "/v2/%70roducts";
const small = { realm: "staging", issuers: [sixty.issuers[0]], routes: [{ name: "health", path: "/health", methods: ["GET"], access: "public" }] };
const json = (value) => JSON.stringify(value, null, 2);
let bundleSize;
let builtBundle;

const cases = [
  { name: "60 routes in [vars] are refused with the platform limit named", body: issuer + Array.from({ length: 60 }, (_, i) => route(i)).join(""), script: "check-config.mjs", status: 1, output: /PORTCULLIS_CONFIG: is \d+ bytes .*5 KB \(5120 bytes\)/ },
  { name: "a small valid configuration passes", body: issuer + route(1), script: "check-config.mjs", status: 0, output: /config OK \(1 issuer, 1 route, from \[vars\] PORTCULLIS_CONFIG\)/ },
  { name: "an invalid route is named by its index and its name", body: issuer + route(1) + `[[vars.PORTCULLIS_CONFIG.routes]]\nname = "bad one"\npath = "/v1/%61dmin"\n`, script: "check-config.mjs", status: 1, output: /PORTCULLIS_CONFIG\.routes\.1\.path: .*not canonical.* \(route "bad one"\)/ },
  { name: "build refuses an invalid configuration before wrangler runs", body: issuer + `[[vars.PORTCULLIS_CONFIG.routes]]\npath = "/x"\naccess = "sometimes"\n`, script: "guarded.mjs", args: ["deploy", "--dry-run"], status: 1, output: /build refused/ },
  { name: "a real deploy refuses placeholders", body: issuer.replace(/acme\.test/g, "example.com") + route(1), script: "guarded.mjs", args: ["deploy"], status: 1, output: /placeholder .*deploy refused/s },
  { name: "a TOML syntax error keeps its line and column", raw: `name = "guards"\n[vars]\nA = "unterminated\n`, script: "check-config.mjs", status: 2, output: /wrangler\.toml:3:\d+: / },

  // The file form: configuration at any size.
  { name: "a 60-route configuration file passes check-config", raw: fileToml(), files: { "portcullis.config.json": sixtyText }, script: "check-config.mjs", status: 0, output: /config OK \(3 issuers, 60 routes, from portcullis\.config\.json\)/ },
  {
    name: "build bundles the 60-route configuration file (wrangler deploy --dry-run)",
    raw: fileToml(),
    files: { "portcullis.config.json": sixtyText },
    script: "guarded.mjs",
    args: ["deploy", "--dry-run", "--outdir", "dist"],
    status: 0,
    output: /config OK \(3 issuers, 60 routes, from portcullis\.config\.json\).*gzip: [\d.]+ KiB/s,
    // The routes are in the Worker itself (not in a var): the last route's name is in the bundle.
    after: (output, caseDir) => {
      bundleSize = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(output)?.slice(1).join(", gzip ");
      builtBundle = join(caseDir, "dist", "worker.js");
      return readFileSync(join(caseDir, "dist", "worker.js"), "utf8").includes(`"${sixty.routes[59].name}"`);
    },
  },
  { name: "a bad route in the file is named by the file, its index and its name", raw: fileToml(), files: { "portcullis.config.json": json(withBadRoute) }, script: "check-config.mjs", status: 1, output: new RegExp(`^portcullis\\.config\\.json: routes\\.17\\.path: .*not canonical.* \\(route "${sixty.routes[17].name}"\\)$`, "m") },
  { name: "build refuses a bad route in the file before wrangler runs", raw: fileToml(), files: { "portcullis.config.json": json(withBadRoute) }, script: "guarded.mjs", args: ["deploy", "--dry-run", "--outdir", "dist"], status: 1, output: /portcullis\.config\.json: routes\.17\.path: .*build refused/s },
  { name: "a JSON syntax error in the file keeps its line and column", raw: fileToml(), files: { "portcullis.config.json": '{\n  "realm": "acme",\n  "routes": [,]\n}\n' }, script: "check-config.mjs", status: 1, output: /^portcullis\.config\.json:3:14: is not valid JSON \(Unexpected "," in JSON\)$/m },
  { name: "the file and the var together are refused, naming both", body: issuer + route(1), files: { "portcullis.config.json": sixtyText }, script: "check-config.mjs", status: 1, output: /^PORTCULLIS_CONFIG: is set, and so is the configuration file portcullis\.config\.json: configure one of them, not both/m },
  { name: "build refuses the file and the var together", body: issuer + route(1), files: { "portcullis.config.json": sixtyText }, script: "guarded.mjs", args: ["deploy", "--dry-run", "--outdir", "dist"], status: 1, output: /PORTCULLIS_CONFIG: is set, and so is the configuration file portcullis\.config\.json.*build refused/s },
  {
    name: "the same 60 routes in [vars] are refused by build, naming the 5 KB limit and the file form",
    raw: fileToml(`PORTCULLIS_CONFIG = ${JSON.stringify(JSON.stringify(sixty))}\n`),
    script: "guarded.mjs",
    args: ["deploy", "--dry-run", "--outdir", "dist"],
    status: 1,
    output: /PORTCULLIS_CONFIG: is \d+ bytes .*5 KB \(5120 bytes\): deploying it would fail; move it to portcullis\.config\.json .*build refused/s,
  },
  { name: "--env staging reads portcullis.config.staging.json, not the top-level file", raw: fileToml(`[env.staging.vars]\nORIGIN_URL = "https://origin.acme-saas.test"\n`), files: { "portcullis.config.json": sixtyText, "portcullis.config.staging.json": json(small) }, script: "check-config.mjs", args: ["--env", "staging"], status: 0, output: /config OK \(1 issuer, 1 route, from portcullis\.config\.staging\.json\)/ },
  { name: "--env staging with neither form says where the configuration goes", raw: fileToml(`[env.staging.vars]\nORIGIN_URL = "https://origin.acme-saas.test"\n`), files: { "portcullis.config.json": sixtyText }, script: "check-config.mjs", args: ["--env", "staging"], status: 1, output: /PORTCULLIS_CONFIG: is missing: put the configuration in portcullis\.config\.staging\.json .*\[env\.staging\.vars\] PORTCULLIS_CONFIG/ },
  // wrangler's other spellings of the environment select it too: the guard checks the environment wrangler deploys.
  ...[
    ["-e staging", ["-e", "staging"], {}],
    ["--env= then --env staging (npm run build -- --env staging)", ["--env=", "--env", "staging"], {}],
    ["CLOUDFLARE_ENV=staging", [], { CLOUDFLARE_ENV: "staging" }],
  ].map(([how, extra, env]) => ({ name: `build with ${how} checks staging, not the top-level file`, raw: fileToml(`[env.staging.vars]\nORIGIN_URL = "https://origin.acme-saas.test"\n`), files: { "portcullis.config.json": sixtyText }, script: "guarded.mjs", args: ["deploy", "--dry-run", ...extra], env, status: 1, output: /portcullis\.config\.staging\.json.*build refused/s })),
  { name: "--config-file names another file", raw: fileToml(), files: { "conf/api.json": sixtyText }, script: "check-config.mjs", args: ["--config-file", "conf/api.json"], status: 0, output: /config OK \(3 issuers, 60 routes, from conf\/api\.json\)/ },
];

let failed = 0;
for (const [i, c] of cases.entries()) {
  const caseDir = join(dir, `case${i}`);
  rmSync(caseDir, { recursive: true, force: true });
  mkdirSync(caseDir, { recursive: true });
  const config = join(caseDir, "wrangler.toml");
  writeFileSync(config, c.raw ?? toml(c.body));
  for (const [name, text] of Object.entries(c.files ?? {})) {
    mkdirSync(join(caseDir, name, ".."), { recursive: true });
    writeFileSync(join(caseDir, name), text);
  }
  // Paths in the arguments (--outdir, --config-file) are the case folder's, as a user's are their project's.
  const args = (c.args ?? []).map((arg, j, all) => (["--outdir", "--config-file"].includes(all[j - 1]) ? join(caseDir, arg) : arg));
  const run = spawnSync(process.execPath, [join(root, "scripts", c.script), ...args, "--config", config], { encoding: "utf8", cwd: root, env: { ...process.env, ...c.env } });
  const output = `${run.stdout}${run.stderr}`;
  const ok = run.status === c.status && c.output.test(output) && (c.after ? c.after(output, caseDir) : true);
  if (!ok) failed++;
  console.log(`${ok ? "PASS" : "FAIL"}  ${c.name}${ok ? "" : ` (exit ${run.status}, expected ${c.status})\n${output}`}`);
}

// Under workerd: the routes of the file are the Worker's, and what skipped the check still fails closed.
const wranglerBin = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const badFile = JSON.stringify({ file: "portcullis.config.json", config: withBadRoute });
const goodFile = JSON.stringify({ file: "portcullis.config.json", config: sixty });
const denied = (status, reason, rule) => ({ status, log: new RegExp(`"reason":"${reason}".*"rule":"${rule}"`) });
const invalid = (issue) => ({ status: 500, log: new RegExp(`"event":"config_invalid".*${issue}`) });
const runtimeCases = [
  { name: "the built 60-route bundle serves the file's routes under workerd", command: () => [wranglerBin, "dev", builtBundle, "--no-bundle"], raw: fileToml(), expect: denied(401, "token_missing", "list orders") },
  { name: "npm run dev serves the 60-route configuration file", command: () => [join(root, "scripts", "guarded.mjs"), "dev"], raw: fileToml(), files: { "portcullis.config.json": sixtyText }, expect: denied(401, "token_missing", "list orders") },
  { name: "a bundled file that skipped the check fails closed: 500, the bad route named by the file", command: () => [wranglerBin, "dev", "--define", `__PORTCULLIS_CONFIG_FILE__:${badFile}`], raw: fileToml(), expect: invalid(`portcullis.config.json: routes.17.path`) },
  { name: "a bundled file and the var together fail closed at runtime: 500, both named", command: () => [wranglerBin, "dev", "--define", `__PORTCULLIS_CONFIG_FILE__:${goodFile}`], body: issuer + route(1), expect: invalid("PORTCULLIS_CONFIG: is set, and so is the configuration file portcullis.config.json") },
];
for (const [i, c] of runtimeCases.entries()) {
  if (c.name.startsWith("the built") && !builtBundle) {
    failed++;
    console.log(`FAIL  ${c.name} (the build case did not produce a bundle)`);
    continue;
  }
  const caseDir = join(dir, `runtime${i}`);
  mkdirSync(caseDir, { recursive: true });
  const config = join(caseDir, "wrangler.toml");
  writeFileSync(config, c.raw ?? toml(c.body));
  for (const [name, text] of Object.entries(c.files ?? {})) writeFileSync(join(caseDir, name), text);
  const { status, output } = await underWorkerd([...c.command(), "--config", config], "/v2/orders");
  const ok = status === c.expect.status && c.expect.log.test(output);
  if (!ok) failed++;
  console.log(`${ok ? "PASS" : "FAIL"}  ${c.name}${ok ? "" : ` (status ${status}, expected ${c.expect.status})\n${output}`}`);
}

rmSync(dir, { recursive: true, force: true });
if (bundleSize) console.log(`\nWorker bundle with the 60-route configuration file: ${bundleSize} (wrangler deploy --dry-run, minified)`);
if (failed) process.exit(1);

/** Starts `wrangler dev` (its own process group, loopback, a free port), asks for `path` once, stops it. */
async function underWorkerd(args, path) {
  const port = await freePort();
  const child = spawn(process.execPath, [...args, "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false"], {
    cwd: root,
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_SEND_ERROR_REPORTS: "false" },
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise((done) => child.on("exit", done));
  let status;
  try {
    for (let waited = 0; waited < 120 && child.exitCode === null && !/Ready on/.test(output); waited++) await sleep(1000);
    if (/Ready on/.test(output)) status = (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    await sleep(500); // the decision log line follows the response
  } finally {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(5000)]);
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  return { status, output };
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on("error", fail);
  });
}

function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}
