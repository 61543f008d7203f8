// `npm run bench`: measures Portcullis inside workerd on loopback and writes bench/RESULTS.md.
//
// Everything runs on this machine, in one run:
//   - this process: the builds, the loopback origin and issuer (JWKS) servers, Miniflare (which runs one
//     workerd process), the cold-start timing and the report;
//   - workerd (spawned by Miniflare): every Worker under test, each in its own isolate, each on its own
//     loopback port through Miniflare's direct sockets (no Miniflare entry/proxy worker in the path);
//   - bench/load.mjs, one child process per measurement: autocannon, the load generator.
// Rows: (1) baseline pass-through, (2) Portcullis with the verified-token cache off, (3) with it on,
// (3c) with a DPoP-bound token and a fresh proof per request (replay store: a Durable Object),
// (4) hono/jwk with jwks_uri, (4b) hono/jwk with keys cached by user code, (5) bare crypto.subtle.verify,
// (6) cold start of a fresh workerd whose KV already holds the JWKS, (2s/3s) Portcullis with static keys and
// log.allowed = false, (7) the minimal jose gate, (8) the floor Workers, and the scale table (this process).
// See bench/RESULTS.md for the method, `npm run bench -- --help` for the options, and bench/lib/ for the
// parts (one job per file).
import "./lib/node-version.mjs";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { analyse } from "./lib/analysis.mjs";
import { bundleBenchWorkers, compatibility, wranglerBundle } from "./lib/build.mjs";
import { functionalChecks } from "./lib/checks.mjs";
import { cleanupAll } from "./lib/cleanup.mjs";
import { coldStarts } from "./lib/cold-start.mjs";
import { isolateLoop } from "./lib/isolate-loop.mjs";
import { BENCH, OUT, ROOT } from "./lib/constants.mjs";
import { makeKeys, makeTokens } from "./lib/fixtures.mjs";
import { elapsedSeconds, say } from "./lib/log.mjs";
import { measureRows } from "./lib/measure.mjs";
import { parseOptions, writesReport } from "./lib/options.mjs";
import { profileRow } from "./lib/profile.mjs";
import { renderReport } from "./lib/report.mjs";
import { scaleTable } from "./lib/scale.mjs";
import { benchRows } from "./lib/rows.mjs";
import { startServers } from "./lib/servers.mjs";
import { machineBusy } from "./lib/system.mjs";
import { startWorkers } from "./lib/workers.mjs";

const options = parseOptions(process.argv.slice(2));
try {
  await main();
} catch (error) {
  console.error(`\nbench failed: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}

async function main() {
  if (!/\btoken_cache\b/.test(readFileSync(join(ROOT, "src/config/schema.ts"), "utf8"))) {
    throw new Error("src/config/schema.ts has no token_cache field yet: rows 2 and 3 need `token_cache = { enabled = false }`.");
  }
  const loadBefore = loadavg();
  const idleCheck = await machineBusy(1000);
  if (idleCheck > 0.3) say(`warning: the machine is already busy (${idleCheck.toFixed(2)} cores in use before the bench started): expect noisy numbers`);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });

  say("bundling Portcullis with wrangler deploy --dry-run ...");
  const bundle = wranglerBundle();
  say(`Portcullis bundle: ${bundle.uploadKiB} KiB, gzip ${bundle.gzipKiB} KiB (wrangler's numbers)`);
  const scripts = await bundleBenchWorkers(options);
  const compat = compatibility();

  const keys = await makeKeys();
  const servers = await startServers(keys.jwks);
  const tokens = await makeTokens(keys, servers.issuer.url);
  const workerd = await startWorkers({ bundle, scripts, keys, tokens, servers, compat, options });
  const probes = await functionalChecks({ portOf: workerd.portOf, tokens, origin: servers.origin });
  say("functional checks passed");

  const rows = benchRows(tokens, options);
  if (options.profile) {
    if (rows.length !== 1) throw new Error(`--profile: no row ${options.profile}`);
    return profileRow(rows[0], workerd, options.settings);
  }
  await measureRows(rows, workerd, options.settings);
  const jwksDuringRows = { ...servers.issuer.fetches };
  await workerd.stop();

  const scale = options.onlyRe && !options.onlyRe.test("scale") ? undefined : await scaleTable({ say });
  const loop = options.onlyRe && !options.onlyRe.test("loop") ? undefined : await isolateLoop({ bundle, scripts, keys, makeTokens, compat, slices: options.quick ? 15 : 150 });
  const cold = options.onlyRe && !options.onlyRe.test("cold") ? undefined : await coldStarts({ bundle, scripts, compat, servers, tokens, settings: options.settings });
  const analysis = analyse(rows, options.settings.rounds);
  const report = renderReport({ rows, analysis, bundle, cold, loop, scale, probes, jwksDuringRows, loadBefore, loadAfter: loadavg(), idleCheck, options, totalSeconds: elapsedSeconds() });
  if (writesReport(options)) {
    const file = join(BENCH, options.diagnose ? "DIAGNOSE.md" : "RESULTS.md");
    writeFileSync(file, report);
    say(`wrote ${file}`);
  } else {
    console.log(report);
    say(`${options.quick ? "--quick" : "--only"} given: no report file written`);
  }
  say(`done in ${elapsedSeconds().toFixed(0)} s`);
}
