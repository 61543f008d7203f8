// `npm run build` / `npm run deploy` / `npm run dev`: the configuration check first, then wrangler with the same arguments.
// An invalid configuration never ships; a real deploy (anything but --dry-run) also refuses placeholders
// (check-config --strict). Arguments after `--` reach both: `npm run deploy -- --env staging`.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.findIndex((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  if (i < 0) return [];
  const value = args[i].includes("=") ? args[i].slice(name.length + 3) : args[i + 1];
  return value === undefined || value === "" ? [] : [`--${name}`, value];
};
const dryRun = args.includes("--dry-run");
// Only a real deploy refuses placeholders; a dry run (build) and `wrangler dev` warn about them.
const strict = args[0] === "deploy" && !dryRun;
const check = [fileURLToPath(new URL("check-config.mjs", import.meta.url)), ...option("env"), ...option("config"), ...(strict ? ["--strict"] : [])];

const run = (command, commandArgs) => spawnSync(command, commandArgs, { stdio: "inherit" }).status ?? 1;
const checked = run(process.execPath, check);
if (checked !== 0) {
  console.error(`\n${strict ? "deploy" : args[0] === "dev" ? "dev" : "build"} refused: fix the configuration above (npm run check-config -- ${check.slice(1).join(" ")})`);
  process.exit(checked);
}
process.exit(run("wrangler", args));
