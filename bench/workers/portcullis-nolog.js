// Diagnostic variant for `npm run bench -- --diagnose` (never part of the main table): Portcullis built from
// src/ through its public API exactly as src/worker.ts builds it (gate middleware, then forwarder), except that
// the logger is a no-op. Comparing it with the real Worker shows what the per-request log line costs.
import { Hono } from "hono";
import { createGate, parseConfig } from "../../src/index.ts";

let app;

function build(env) {
  const parsed = parseConfig(env.PORTCULLIS_CONFIG);
  if (!parsed.ok) throw new Error(`invalid PORTCULLIS_CONFIG: ${JSON.stringify(parsed.issues)}`);
  const gate = createGate(parsed.config, { log: () => {} });
  const built = new Hono();
  built.use("*", gate.middleware);
  built.all("*", gate.forwarder(new URL(env.ORIGIN_URL)));
  return built;
}

export default {
  fetch(request, env, ctx) {
    app ??= build(env);
    return app.fetch(request, env, ctx);
  },
};
