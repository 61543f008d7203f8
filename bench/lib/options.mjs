// The command line of `npm run bench -- ...`: every option is optional; `--help` prints this list.
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";

export const USAGE = `npm run bench -- [options]   measures Portcullis inside workerd on loopback; writes bench/RESULTS.md

  --rounds N        rounds of every measurement (3)
  --duration S      measured seconds per row and round (3)
  --warmup S        warm-up seconds before each measurement (0.5)
  --prime S         the first warm-up of each row, which primes its isolate (2)
  --connections C   autocannon connections (10)
  --cold N          rounds of cold starts, each Worker once per setting per round (9)
  --only REGEX      only the rows whose id matches (debugging); prints the report, writes no file
  --quick           one short round and one cold start (checks that the bench works, numbers are rough);
                    prints the report, writes no file; explicit options above override its settings
  --profile ROW_ID  CPU-profiles that row's isolate through workerd's inspector and prints where the time
                    goes (per function; per pipeline stage for pc-nolog-* rows, with --diagnose); writes no report
  --diagnose        adds rows that price the parts of a Portcullis request (Portcullis without its log line,
                    SHA-256 / console.log / timer / Request copy inside workerd; the floor Workers are in the
                    main table); writes bench/DIAGNOSE.md instead of bench/RESULTS.md
  --pin             taskset: workerd on CPU 1, the rest on CPU 0
  --help            this text`;

const VALUED = ["rounds", "duration", "warmup", "prime", "connections", "cold", "only", "profile"];
const FLAGS = ["diagnose", "pin", "quick", "help"];
const DEFAULTS = { rounds: 3, duration: 3, warmup: 0.5, prime: 2, connections: 10, cold: 9 };
/** --quick: enough to run every row, check every Worker and render the report, in about a minute. */
const QUICK = { rounds: 1, duration: 1, warmup: 0.2, prime: 0.5, cold: 1 };

/** Parses argv (without node and the script); prints the usage and exits on --help or an unknown option. */
export function parseOptions(args) {
  const given = readArgs(args);
  if (given.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const fallback = given.quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const number = (name) => (given[name] === undefined ? fallback[name] : Number(given[name]));
  const profile = given.profile ?? "";
  const only = profile ? `^${profile}$` : (given.only ?? "");
  return {
    args,
    settings: {
      rounds: number("rounds"),
      duration: number("duration"),
      warmup: number("warmup"),
      prime: number("prime"),
      connections: number("connections"),
      coldRepeats: number("cold"),
    },
    profile,
    diagnose: Boolean(given.diagnose),
    quick: Boolean(given.quick),
    // --pin: workerd on its own core, everything else (this process, the load generator) on the other; see
    // pinCpus(). Off by default: on the machine this was written on it did not reduce the run-to-run spread.
    pin: Boolean(given.pin) && cpus().length >= 2 && spawnSync("taskset", ["-V"]).status === 0,
    onlyRe: only ? new RegExp(only) : undefined,
  };
}

/** Whether this run writes its report file (a partial or quick run only prints it). */
export const writesReport = (options) => !options.onlyRe && !options.quick;

function readArgs(args) {
  const given = {};
  for (let i = 0; i < args.length; i++) {
    const name = args[i].replace(/^--/, "");
    if (VALUED.includes(name)) {
      const value = args[++i];
      if (value === undefined) throw new Error(`--${name} needs a value`);
      given[name] = value;
    } else if (FLAGS.includes(name) && args[i] === `--${name}`) {
      given[name] = true;
    } else {
      console.error(`bench: unknown option ${args[i]} (npm run bench -- --help lists them)`);
      process.exit(2);
    }
  }
  return given;
}
