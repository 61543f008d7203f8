// Before anything is measured: every Worker must answer as a gate should (200 for each valid token, 401
// without one or for a wrong aud/iss, 403 without the scope), so that every row refuses the same tokens.
// Also probes what hono/jwk does with less than the full `verification` object (for the report).
import { ALGS, PATH, SCOPE, VERIFY_N } from "./constants.mjs";
import { DIAGNOSTIC_OPS } from "./diagnose.mjs";
import { bearer, dpopProofSigner } from "./fixtures.mjs";

async function get(port, path, headers = {}) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** Throws with every failed expectation; answers the hono/jwk probes. */
export async function functionalChecks({ portOf, tokens, origin }) {
  const failures = [];
  const expect = async (what, port, path, headers, status, extra) => {
    const response = await get(port, path, headers);
    if (response.status !== status) failures.push(`${what}: ${response.status} (expected ${status}) ${response.body.slice(0, 200)}`);
    else if (extra) {
      const problem = extra(response);
      if (problem) failures.push(`${what}: ${problem}`);
    }
    return response;
  };
  const forwardedIdentity = () => {
    const seen = origin.state.last ?? {};
    if (seen["x-auth-sub"] !== "bench-user" || seen["x-auth-scope"] !== SCOPE) return `origin saw ${JSON.stringify(seen)}`;
    if (seen.authorization) return "the Authorization header reached the origin";
    return undefined;
  };
  const gateAnswers = async (worker, onValid) => {
    for (const alg of ALGS) await expect(`${worker} ${alg} valid`, portOf[worker], PATH, bearer(tokens.valid[alg]), 200, onValid);
    await expect(`${worker} no token`, portOf[worker], PATH, {}, 401);
    await expect(`${worker} wrong aud`, portOf[worker], PATH, bearer(tokens.wrongAudience), 401);
    await expect(`${worker} wrong iss`, portOf[worker], PATH, bearer(tokens.wrongIssuer), 401);
    await expect(`${worker} no scope`, portOf[worker], PATH, bearer(tokens.noScope), 403);
  };

  await expect("baseline", portOf.baseline, PATH, {}, 200);
  // Row 3c: a fresh proof passes, the same proof again is refused (the replay store answers), Bearer is refused.
  const dpopProof = dpopProofSigner(tokens.dpop)(`http://127.0.0.1:${portOf["pc-dpop"]}${PATH}`);
  const dpopHeaders = { authorization: `DPoP ${tokens.dpop.token}`, dpop: dpopProof };
  await expect("pc-dpop fresh proof", portOf["pc-dpop"], PATH, dpopHeaders, 200);
  await expect("pc-dpop replayed proof", portOf["pc-dpop"], PATH, dpopHeaders, 401);
  await expect("pc-dpop bound token as Bearer", portOf["pc-dpop"], PATH, bearer(tokens.dpop.token), 401);
  for (const worker of ["pc-nocache", "pc-cache", "pc-quiet", "pc-nolog-nocache", "pc-nolog-cache", "pc-static-nocache", "pc-static-cache"]) await gateAnswers(worker, forwardedIdentity);
  for (const worker of ["hono", "hono-cached", "jose"]) await gateAnswers(worker);
  for (const alg of ALGS) {
    for (const n of VERIFY_N) await expect(`verify ${alg} n=${n}`, portOf.verify, `/?alg=${alg}&n=${n}`, {}, 200);
  }
  for (const op of DIAGNOSTIC_OPS) await expect(`op ${op}`, portOf.verify, `/?op=${op}&n=2`, bearer(tokens.valid.ES256), 200);
  for (const alg of ALGS) await expect(`floor-cache ${alg} valid`, portOf["floor-cache"], PATH, bearer(tokens.valid[alg]), 200);
  await expect("floor-verify ES256 valid", portOf["floor-verify"], PATH, bearer(tokens.valid.ES256), 200);
  await expect("floor-verify forged", portOf["floor-verify"], PATH, bearer(`${tokens.valid.ES256.slice(0, -6)}AAAAAA`), 401);
  if (failures.length) throw new Error(`functional checks failed:\n  ${failures.join("\n  ")}`);
  return honoProbes(portOf, tokens);
}

/** What hono/jwk does when configured without (or with less than) the full `verification` object: recorded
 * for the report, not required. */
async function honoProbes(portOf, tokens) {
  const probe = async (worker, token) => (await get(portOf[worker], PATH, bearer(token))).status;
  return {
    typOnly: {
      valid: await probe("hono-probe-typ-only", tokens.valid.ES256),
      wrongAudience: await probe("hono-probe-typ-only", tokens.wrongAudience),
      wrongIssuer: await probe("hono-probe-typ-only", tokens.wrongIssuer),
    },
    defaults: { valid: await probe("hono-probe-defaults", tokens.valid.ES256) },
  };
}
