// Diagnostic variant for `npm run bench -- --diagnose` (never part of the main table): Portcullis built from
// src/ through its public API exactly as src/worker.ts builds it (`gate.handle`), except that the logger is a
// no-op: no line at all, denials and key-set events included. Comparing it with the real Worker shows what
// logging costs.
import { createGate, parseConfig } from "../../src/index.ts";

let gate;
let origin;

export default {
  fetch(request, env, ctx) {
    if (!gate) {
      const parsed = parseConfig(env.PORTCULLIS_CONFIG);
      if (!parsed.ok) throw new Error(`invalid PORTCULLIS_CONFIG: ${JSON.stringify(parsed.issues)}`);
      gate = createGate(parsed.config, { log: () => {} });
      origin = new URL(env.ORIGIN_URL);
    }
    return gate.handle(request, env, ctx, origin);
  },
};
