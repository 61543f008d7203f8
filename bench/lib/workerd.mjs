// Miniflare's Node API, the one way the bench starts workerd: every Worker on its own loopback port through
// Miniflare's direct sockets (no Miniflare entry/proxy worker in the path).
const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");

/**
 * A Worker under test: `{ name, script, bindings, kv?, port }`, run with wrangler.toml's compatibility
 * settings; `kv` names its PORTCULLIS_KV namespace.
 */
export function workerOptions(spec, { compatibilityDate, compatibilityFlags }) {
  return {
    name: spec.name,
    modules: true,
    scriptPath: spec.script,
    compatibilityDate,
    compatibilityFlags,
    bindings: spec.bindings,
    ...(spec.kv ? { kvNamespaces: { PORTCULLIS_KV: spec.kv } } : {}),
    // The DPoP replay store: the bundle's own Durable Object class, SQLite-backed as wrangler.toml migrates it.
    ...(spec.durableObjects ? { durableObjects: { PORTCULLIS_DPOP: { className: "DpopReplayStore", useSQLite: true } } } : {}),
    unsafeDirectSockets: [{ host: "127.0.0.1", port: spec.port }],
  };
}

/** One workerd process serving `specs`; `extra` adds Miniflare options (inspector, logs, persistence). */
export function startMiniflare(specs, compat, extra) {
  return new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: 0,
      cf: false,
      telemetry: { enabled: false },
      ...extra,
      workers: specs.map((spec) => workerOptions(spec, compat)),
    }),
  );
}

/** Worker console output: one JSON line per Portcullis decision. Counted per row, never printed. */
export function tallyLog(logs, log) {
  logs.lines++;
  const tally = logs.current;
  if (!tally) return;
  tally.lines++;
  try {
    const entry = JSON.parse(log.message);
    if (entry.event === "decision") {
      tally.decisions++;
      const via = `${entry.outcome}${entry.via ? `/${entry.via}` : ""}`;
      tally.via[via] = (tally.via[via] ?? 0) + 1;
    } else if (entry.event) {
      tally.events[entry.event] = (tally.events[entry.event] ?? 0) + 1;
    }
  } catch {
    tally.events["(not json)"] = (tally.events["(not json)"] ?? 0) + 1;
  }
}
