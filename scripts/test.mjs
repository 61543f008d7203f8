#!/usr/bin/env node
// `npm test`: vitest inside workerd, with the runtime's known noise held back. Some tests send what the
// Workers runtime warns about on purpose (non-ASCII Authorization headers, origins that refuse or drop the
// connection), and workerd prints those warnings straight to stderr, test tokens included, where no test
// can silence them. They are counted, not shown; PORTCULLIS_TEST_VERBOSE=1 shows everything. Console output
// of passing tests is hidden too (vitest `silent: "passed-only"`); a failing test's output is kept.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";

const verbose = process.env.PORTCULLIS_TEST_VERBOSE === "1";
const args = process.argv.slice(2);
const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));

/** workerd's own lines for what the tests provoke on purpose; anything else is shown. */
const NOISE = [
  /^A header value for "[^"]+" contains non-ASCII characters/,
  /^uncaught exception; .*(Network connection lost|Connection refused)/,
  /^exception = .*disconnected: (Connection refused|jsg\.Error: Network connection lost)/,
];
/** A hidden exception's `stack:` line (workerd addresses) goes with it. */
const STACK = /^stack: \S*workerd/;

if (!args.includes("--help")) {
  console.error("npm test: about 1,800 tests in workerd (2,250 with the shared JOSE vectors), both mounts (Worker and Hono); 4-7 minutes on 2 cores.");
}

const child = spawn(process.execPath, [vitest, "run", ...(verbose ? [] : ["--silent=passed-only"]), ...args], {
  stdio: ["inherit", "pipe", "pipe"],
  env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? "1" : "0") },
});

let hidden = 0;
/** Each stream filtered line by line (workerd's lines reach vitest's stdout and stderr). */
function filter(input, output) {
  let afterHidden = false;
  createInterface({ input }).on("line", (line) => {
    const plain = stripVTControlCharacters(line);
    const noise = !verbose && (NOISE.some((pattern) => pattern.test(plain)) || (afterHidden && STACK.test(plain)));
    afterHidden = noise;
    if (noise) hidden++;
    else output.write(`${line}\n`);
  });
}
filter(child.stdout, process.stdout);
filter(child.stderr, process.stderr);

child.on("close", (code, signal) => {
  if (hidden) console.error(`(${hidden} known workerd runtime warnings hidden; PORTCULLIS_TEST_VERBOSE=1 shows them)`);
  process.exit(signal ? 1 : (code ?? 1));
});
