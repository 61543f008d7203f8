import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Loads the external JOSE test vectors (Wycheproof, RFC 7515/7520/8037) for the conformance test. Runs in
 * Node inside vitest's globalSetup, since tests in workerd cannot read files. The vectors are peer material
 * and are never copied into this repository: they are read from `$PORTCULLIS_VECTORS`, else from
 * `../shared/vectors` next to the repository root. Returns null when that folder does not exist.
 *
 * Keys are normalised here exactly as the vectors' README says: the verification key is a group's `public`
 * JWK when present, else its `private` JWK without `d, p, q, dp, dq, qi`; either may be a `{"keys":[...]}`
 * set. Nothing else is interpreted here: expectations and overrides live in the test.
 */

export type VectorResult = "valid" | "invalid" | "acceptable";
export type Jwk = Record<string, unknown>;

export interface VectorCase {
  tcId: number;
  comment: string;
  /** `result`, or `signatureResult` in rfc_jws_examples.json. */
  result: VectorResult;
  flags: string[];
  /** The compact JWS; a JSON-serialized JWS is passed on as its JSON text (it must be rejected). */
  jws: string;
  jsonSerialization: boolean;
  /** rfc_jws_examples.json only: where the example comes from. */
  source?: string;
}

export interface VectorGroup {
  comment: string;
  /** Which member of the group the verification key set was derived from. */
  keyFrom: "public" | "private" | "verificationKey";
  /** The verification key set, per the README. */
  jwks: { keys: Jwk[] };
  /** The group's `private` key(s) with private members removed, when the group also has `public`. */
  strippedPrivate?: { keys: Jwk[] };
  cases: VectorCase[];
}

export interface VectorFile {
  /** Path relative to the vectors folder, e.g. `wycheproof/json_web_signature_test.json`. */
  file: string;
  /** Set when the file is missing or not in the expected shape: the test then fails for that file. */
  error?: string;
  numberOfTests?: number;
  groups: VectorGroup[];
}

export interface JwsVectors {
  dir: string;
  files: VectorFile[];
}

export const VECTOR_FILES = [
  "wycheproof/json_web_signature_test.json",
  "wycheproof/json_web_key_test.json",
  "rfc/rfc_jws_examples.json",
] as const;

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi"];

function repoRoot(): string {
  try {
    // test/setup/vectors.ts -> repository root
    return resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  } catch {
    return process.cwd();
  }
}

/** Where the vectors are expected: `$PORTCULLIS_VECTORS` (relative to the repo root if relative), else `../shared/vectors`. */
export function vectorsDir(): string {
  const root = repoRoot();
  const configured = process.env.PORTCULLIS_VECTORS;
  if (configured) return isAbsolute(configured) ? configured : resolve(root, configured);
  return resolve(root, "../shared/vectors");
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function keySet(value: unknown): Jwk[] {
  if (isObject(value) && Array.isArray(value.keys)) return value.keys.filter(isObject);
  if (isObject(value)) return [value];
  throw new Error(`not a JWK or JWK set: ${JSON.stringify(value)?.slice(0, 80)}`);
}

function withoutPrivate(keys: Jwk[]): Jwk[] {
  return keys.map((key) => Object.fromEntries(Object.entries(key).filter(([name]) => !PRIVATE_MEMBERS.includes(name))));
}

function toCase(test: Record<string, unknown>, resultField: "result" | "signatureResult"): VectorCase {
  const result = test[resultField];
  if (typeof test.tcId !== "number") throw new Error(`test without a numeric tcId: ${JSON.stringify(test).slice(0, 80)}`);
  if (result !== "valid" && result !== "invalid" && result !== "acceptable") {
    throw new Error(`tcId ${test.tcId}: unknown ${resultField} ${JSON.stringify(result)}`);
  }
  const jsonSerialization = typeof test.jws !== "string";
  return {
    tcId: test.tcId,
    comment: typeof test.comment === "string" ? test.comment : "",
    result,
    flags: Array.isArray(test.flags) ? test.flags.filter((flag): flag is string => typeof flag === "string") : [],
    jws: jsonSerialization ? JSON.stringify(test.jws) : (test.jws as string),
    jsonSerialization,
    ...(typeof test.source === "string" ? { source: test.source } : {}),
  };
}

/** Wycheproof layout: `testGroups[]` with `private` (and sometimes `public`) and `tests[]`. */
function wycheproofGroups(data: Record<string, unknown>): VectorGroup[] {
  if (!Array.isArray(data.testGroups)) throw new Error("no testGroups array");
  return data.testGroups.filter(isObject).map((group) => {
    const hasPublic = group.public !== undefined && group.public !== null;
    const privateKeys = withoutPrivate(keySet(group.private));
    if (!Array.isArray(group.tests)) throw new Error(`group ${String(group.comment)} has no tests array`);
    return {
      comment: typeof group.comment === "string" ? group.comment : "",
      keyFrom: hasPublic ? "public" : "private",
      jwks: { keys: hasPublic ? keySet(group.public) : privateKeys },
      ...(hasPublic ? { strippedPrivate: { keys: privateKeys } } : {}),
      cases: group.tests.filter(isObject).map((test) => toCase(test, "result")),
    } satisfies VectorGroup;
  });
}

/** rfc_jws_examples.json: a flat `tests[]`, each with its own `verificationKey` and `signatureResult`. */
function rfcGroups(data: Record<string, unknown>): VectorGroup[] {
  if (!Array.isArray(data.tests)) throw new Error("no tests array");
  return data.tests.filter(isObject).map((test) => ({
    comment: typeof test.source === "string" ? test.source : "",
    keyFrom: "verificationKey",
    jwks: { keys: withoutPrivate(keySet(test.verificationKey)) },
    cases: [toCase(test, "signatureResult")],
  }));
}

async function loadFile(dir: string, file: string): Promise<VectorFile> {
  try {
    const data: unknown = JSON.parse(await readFile(resolve(dir, file), "utf8"));
    if (!isObject(data)) throw new Error("not a JSON object");
    const groups = file.startsWith("rfc/") ? rfcGroups(data) : wycheproofGroups(data);
    const count = groups.reduce((sum, group) => sum + group.cases.length, 0);
    const numberOfTests = typeof data.numberOfTests === "number" ? data.numberOfTests : undefined;
    if (numberOfTests !== undefined && numberOfTests !== count) {
      throw new Error(`numberOfTests says ${numberOfTests} but the file holds ${count} cases (truncated copy?)`);
    }
    return { file, numberOfTests: count, groups };
  } catch (error) {
    return { file, error: `${resolve(dir, file)}: ${error instanceof Error ? error.message : String(error)}`, groups: [] };
  }
}

/** The vectors for the conformance test, or null (with a warning naming the path) when the folder is absent. */
export async function loadJwsVectors(): Promise<JwsVectors | null> {
  const dir = vectorsDir();
  const found = await stat(dir).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!found) {
    // globalSetup runs once per vitest project: say it once per run.
    if (!process.env.PORTCULLIS_VECTORS_NOTICE) {
      process.env.PORTCULLIS_VECTORS_NOTICE = "1";
      console.warn(
        `[conformance] the shared JOSE vectors are not at ${dir} (they live beside this repository, not in it): ` +
          "their 438 cases are not run, only a test saying they are absent. Set PORTCULLIS_VECTORS to the folder to run them.",
      );
    }
    return null;
  }
  return { dir, files: await Promise.all(VECTOR_FILES.map((file) => loadFile(dir, file))) };
}
