import { env as startupEnv } from "cloudflare:workers";
import bundledFile from "./config/bundled-file";
import { formatIssues, loadConfig, type ConfigIssue } from "./config/load";
import { parseOrigin } from "./config/origin";
import { consoleLog } from "./lib/log";
import { createGate, type Env, type Gate } from "./pipeline/gate";
import { configInvalidAnswer } from "./pipeline/local";
import { warmUp } from "./pipeline/warm-up";

/** The DPoP replay store's Durable Object class, bound in wrangler.toml (`PORTCULLIS_DPOP`). */
export { DpopReplayStore } from "./validate/dpop-replay-store";

/**
 * The deployable Worker: the gate, then the origin. Configuration comes from the file bundled at build time
 * (`portcullis.config.json`, config/bundled-file.ts) or from `[vars]` (`PORTCULLIS_CONFIG`), never both, and
 * `ORIGIN_URL`. It is validated here again (the build validated it too: fail closed whatever shipped), once
 * per isolate and on every change. No router in front: every request goes through the one pipeline
 * (pipeline/gate.ts), so there is no path around it.
 *
 * The gate is built while the isolate starts (module evaluation, from the `env` that `cloudflare:workers`
 * exports), so parsing and validating the configuration is not part of the first request: Cloudflare starts
 * the isolate during the TLS handshake. A request whose `env` holds another configuration or ORIGIN_URL
 * than the one it was built from (tests, `wrangler dev` reloads) still gets a gate built from its own.
 */

type App = {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;
  /** Undefined when the configuration is invalid. */
  gate?: Gate;
};

let built: { config: unknown; origin: unknown; app: App } | undefined;

function appFor(env: Env): App {
  if (!built || built.config !== env.PORTCULLIS_CONFIG || built.origin !== env.ORIGIN_URL) {
    built = { config: env.PORTCULLIS_CONFIG, origin: env.ORIGIN_URL, app: buildApp(env) };
  }
  return built.app;
}

// Pure CPU work (no I/O is allowed at startup); an invalid configuration builds its 500 answer, which logs
// only when a request gets it. Should building ever throw, the first request builds (and answers) instead.
try {
  appFor(startupEnv as unknown as Env);
} catch {
  // Nothing was kept (`built` is assigned only once building succeeded): the first request builds.
}
// Then the code of the request path is compiled (pipeline/warm-up.ts); its promise settles during startup.
warmUp().catch(() => undefined);

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    return appFor(env).fetch(request, env, ctx);
  },

  /** Cron trigger (wrangler.toml `[triggers]`): keeps every issuer's keys in KV fresh ahead of expiry. */
  async scheduled(_controller: ScheduledController, env: Env, ctx: ExecutionContext) {
    const { gate } = appFor(env);
    if (!gate) {
      consoleLog({ event: "jwks_scheduled_refresh", outcome: "error", reason: "config_invalid" });
      return;
    }
    await gate.refreshKeys(env, (promise) => ctx.waitUntil(promise));
  },
} satisfies ExportedHandler<Env>;

function buildApp(env: Env): App {
  const parsed = loadConfig(bundledFile, env.PORTCULLIS_CONFIG);
  const origin = parseOrigin(env.ORIGIN_URL);
  const issues: ConfigIssue[] = [
    ...(parsed.ok ? [] : parsed.issues),
    ...(origin instanceof Error ? [{ field: "ORIGIN_URL", message: origin.message }] : []),
  ];
  if (!parsed.ok || origin instanceof Error) return { fetch: configInvalidAnswer(formatIssues(issues), consoleLog) };
  const gate = createGate(parsed.config);
  return { fetch: (request, env, ctx) => gate.handle(request, env, ctx, origin), gate };
}
