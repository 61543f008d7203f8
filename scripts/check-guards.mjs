// `npm run check:guards` (run by .ci/run): the deploy guards refuse what they must, from outside, the way a
// user meets them: an invalid configuration stops `build`, a PORTCULLIS_CONFIG over the 5 KB platform limit
// is refused naming the limit, placeholders stop a real deploy, TOML errors keep line and column, and route
// errors name the route. Each case writes a wrangler.toml to a temporary folder and runs the real scripts.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "portcullis-guards-"));
const main = join(root, "src/worker.ts");
const issuer = `[[vars.PORTCULLIS_CONFIG.issuers]]\nissuer = "https://auth.acme.test/"\naudiences = ["https://api.acme.test"]\njwks_uri = "https://auth.acme.test/jwks"\n`;
const toml = (body) => `name = "guards"\nmain = "${main}"\ncompatibility_date = "2026-11-01"\n[vars]\nORIGIN_URL = "https://origin.acme.test"\n[vars.PORTCULLIS_CONFIG]\nrealm = "acme"\n${body}`;
const route = (i) => `[[vars.PORTCULLIS_CONFIG.routes]]\nname = "orders resource ${i}"\npath = "/v1/orders${i}/:id/items/**"\nmethods = ["GET"]\nscopes = ["orders:read", "orders:items:read"]\n`;

const cases = [
  { name: "60 routes in [vars] are refused with the platform limit named", body: issuer + Array.from({ length: 60 }, (_, i) => route(i)).join(""), script: "check-config.mjs", status: 1, output: /PORTCULLIS_CONFIG: is \d+ bytes .*5 KB \(5120 bytes\)/ },
  { name: "a small valid configuration passes", body: issuer + route(1), script: "check-config.mjs", status: 0, output: /config OK \(1 issuer, 1 route\)/ },
  { name: "an invalid route is named by its index and its name", body: issuer + route(1) + `[[vars.PORTCULLIS_CONFIG.routes]]\nname = "bad one"\npath = "/v1/%61dmin"\n`, script: "check-config.mjs", status: 1, output: /PORTCULLIS_CONFIG\.routes\.1\.path: .*not canonical.* \(route "bad one"\)/ },
  { name: "build refuses an invalid configuration before wrangler runs", body: issuer + `[[vars.PORTCULLIS_CONFIG.routes]]\npath = "/x"\naccess = "sometimes"\n`, script: "guarded.mjs", args: ["deploy", "--dry-run"], status: 1, output: /build refused/ },
  { name: "a real deploy refuses placeholders", body: issuer.replace(/acme\.test/g, "example.com") + route(1), script: "guarded.mjs", args: ["deploy"], status: 1, output: /placeholder .*deploy refused/s },
  { name: "a TOML syntax error keeps its line and column", raw: `name = "guards"\n[vars]\nA = "unterminated\n`, script: "check-config.mjs", status: 2, output: /wrangler\.toml:3:\d+: / },
];

let failed = 0;
for (const [i, c] of cases.entries()) {
  const config = join(dir, `case${i}`, "wrangler.toml");
  rmSync(join(dir, `case${i}`), { recursive: true, force: true });
  spawnSync("mkdir", ["-p", join(dir, `case${i}`)]);
  writeFileSync(config, c.raw ?? toml(c.body));
  const run = spawnSync(process.execPath, [join(root, "scripts", c.script), ...(c.args ?? []), "--config", config], { encoding: "utf8", cwd: root });
  const output = `${run.stdout}${run.stderr}`;
  const ok = run.status === c.status && c.output.test(output);
  if (!ok) failed++;
  console.log(`${ok ? "PASS" : "FAIL"}  ${c.name}${ok ? "" : ` (exit ${run.status}, expected ${c.status})\n${output}`}`);
}
rmSync(dir, { recursive: true, force: true });
if (failed) process.exit(1);
