// `npm run build` / `npm run deploy` / `npm run dev`: the configuration check first, then wrangler with the same arguments.
// An invalid configuration never ships; a real deploy (anything but --dry-run) also refuses placeholders
// (check-config --strict). Arguments after `--` reach both: `npm run deploy -- --env staging`.
// With the file form (portcullis.config.json, or --config-file PATH, README "Configuration files") the check
// also writes the validated file as a module (.wrangler/portcullis/), and wrangler bundles exactly that:
// build and deploy substitute src/config/bundled-file.ts with it (`--alias`, any size); dev defines its
// value (`--define`), because `wrangler dev` (4.156) ignores `--alias` (it takes aliases from the config
// file only), and one command-line argument is limited (128 KiB on Linux), so dev refuses beyond that.
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BUNDLED_IMPORT, bundledModulePath } from "./config-file.mjs";

const given = process.argv.slice(2);
/**
 * Every occurrence of a wrangler option (`--name V`, `--name=V`, and the alias `-s V`, `-s=V`): the last one
 * counts. The check and wrangler must read the same environment and wrangler.toml, so the guard resolves them
 * once and hands wrangler exactly one of each (wrangler refuses two `--env`s, and an alias it read while the
 * guard did not would have it deploy what was never checked).
 */
const option = (name, alias) => {
  const forms = [`--${name}`, ...(alias ? [`-${alias}`] : [])];
  const at = [];
  let value;
  given.forEach((arg, i) => {
    const form = forms.find((f) => arg === f || arg.startsWith(`${f}=`));
    if (!form || at.includes(i)) return;
    if (arg === form) {
      value = given[i + 1];
      at.push(i, i + 1);
    } else {
      value = arg.slice(form.length + 1);
      at.push(i);
    }
  });
  return { at, value: value === "" ? undefined : value, given: at.length > 0 };
};
const envOption = option("env", "e");
// No --env given: wrangler would take CLOUDFLARE_ENV; the guard takes it too, and pins it for wrangler.
const env = { value: envOption.given ? envOption.value : process.env.CLOUDFLARE_ENV || undefined };
const wranglerConfig = option("config", "c");
const configFile = option("config-file");
// --config-file is Portcullis's own: wrangler never sees it. --env and --config are passed once, as resolved.
const consumed = [...configFile.at, ...envOption.at, ...wranglerConfig.at];
const args = [
  ...given.filter((_, i) => !consumed.includes(i)),
  `--env=${env.value ?? ""}`,
  ...(wranglerConfig.value ? ["--config", wranglerConfig.value] : []),
];
const flag = (name, value) => (value ? [`--${name}`, value] : []);
const dryRun = args.includes("--dry-run");
// Only a real deploy refuses placeholders; a dry run (build) and `wrangler dev` warn about them.
const strict = args[0] === "deploy" && !dryRun;
const bundledModule = bundledModulePath({ config: wranglerConfig.value, env: env.value });
const check = [
  fileURLToPath(new URL("check-config.mjs", import.meta.url)),
  ...flag("env", env.value),
  ...flag("config", wranglerConfig.value),
  ...flag("config-file", configFile.value),
  ...(strict ? ["--strict"] : []),
  "--emit",
  bundledModule,
];

/** Below Linux's 128 KiB limit on one command-line argument (MAX_ARG_STRLEN). */
const DEV_DEFINE_LIMIT = 120 * 1024;
const run = (command, commandArgs) => spawnSync(command, commandArgs, { stdio: "inherit" }).status ?? 1;
// A module left from an earlier build must never ship: only this check may write it.
rmSync(bundledModule, { force: true });
const checked = run(process.execPath, check);
if (checked !== 0) {
  console.error(`\n${strict ? "deploy" : args[0] === "dev" ? "dev" : "build"} refused: fix the configuration above (npm run check-config -- ${check.slice(1, -2).join(" ")})`);
  process.exit(checked);
}
// The check writes the module only for the file form; the [vars] form bundles the stand-in (no file).
process.exit(run("wrangler", [...args, ...(existsSync(bundledModule) ? await bundledFlags() : [])]));

async function bundledFlags() {
  if (args[0] !== "dev") return ["--alias", `${BUNDLED_IMPORT}:${bundledModule}`];
  const { default: bundled } = await import(pathToFileURL(bundledModule).href);
  const define = `__PORTCULLIS_CONFIG_FILE__:${JSON.stringify(bundled)}`;
  if (Buffer.byteLength(define) > DEV_DEFINE_LIMIT) {
    console.error(`dev refused: ${bundled.file} is ${Buffer.byteLength(define)} bytes as JSON, too large to hand to wrangler dev on its command line (${DEV_DEFINE_LIMIT} bytes); \`npm run build\` bundles it at any size`);
    process.exit(1);
  }
  console.log(`dev: ${bundled.file} bundled as validated; restart \`npm run dev\` after editing it`);
  return ["--define", define];
}
