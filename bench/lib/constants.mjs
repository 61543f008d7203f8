// What every part of the bench agrees on: where things are, the algorithms measured, and the one issuer,
// audience, scope and path that every Worker under test checks.
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BENCH = join(ROOT, "bench");
/** Scratch space of one run (bundles, wrangler's files, KV persistence, profiles); emptied at the start. */
export const OUT = join(BENCH, ".out");

export const ALGS = ["RS256", "ES256", "EdDSA"];
/** Verifications per request of the verify Worker: the difference between the two prices one verification. */
export const VERIFY_N = [1, 50];
export const AUDIENCE = "https://api.bench.example";
export const SCOPE = "api:read";
export const PATH = "/v1/items/42";
