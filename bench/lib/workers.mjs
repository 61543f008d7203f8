// The Workers under test, all served by one workerd (spawned by Miniflare), each in its own isolate on its
// own loopback port: the baseline, Portcullis, its peers and the diagnostic Workers.
import { cpus } from "node:os";
import { onCleanup } from "./cleanup.mjs";
import { diagnosticWorkerSpecs } from "./diagnose.mjs";
import { say } from "./log.mjs";
import { peerWorkerSpecs } from "./peers.mjs";
import { portcullisWorkerSpecs } from "./portcullis.mjs";
import { freePort } from "./servers.mjs";
import { pinCpus, workerdChildPid } from "./system.mjs";
import { startMiniflare, tallyLog } from "./workerd.mjs";

/** Row 1: forwards like Portcullis, with no checks. */
export const baselineSpec = (scripts, origin) => ({ name: "baseline", script: scripts.baseline, bindings: { ORIGIN_URL: origin.url } });

/**
 * Starts workerd with every Worker; under --pin, pins it to CPU 1 and this process to CPU 0. `stop()` undoes
 * both (back to every CPU before the cold starts).
 */
export async function startWorkers({ bundle, scripts, keys, tokens, servers, compat, options }) {
  const context = { bundle, scripts, keys, tokens, issuer: servers.issuer, origin: servers.origin };
  const specs = [baselineSpec(scripts, servers.origin), ...portcullisWorkerSpecs(context), ...peerWorkerSpecs(context), ...diagnosticWorkerSpecs(context)];
  for (const spec of specs) spec.port = await freePort();
  const logs = { current: undefined, lines: 0 };
  const inspectorPort = options.profile ? await freePort() : undefined;
  const mf = startMiniflare(specs, compat, { ...(inspectorPort ? { inspectorPort } : {}), handleStructuredLogs: (log) => tallyLog(logs, log) });
  const dispose = onCleanup(() => mf.dispose());
  await mf.ready;
  const pid = workerdChildPid();
  say(`workerd (pid ${pid}) is serving ${specs.length} Workers; issuer ${servers.issuer.url}, origin ${servers.origin.url}`);
  const unpin = options.pin ? pin(pid) : async () => {};
  return {
    portOf: Object.fromEntries(specs.map((spec) => [spec.name, spec.port])),
    scriptOf: Object.fromEntries(specs.map((spec) => [spec.name, spec.script])),
    pid,
    logs,
    inspectorPort,
    stop: async () => {
      await unpin();
      await dispose();
    },
  };
}

function pin(workerdPid) {
  pinCpus(workerdPid, "1");
  pinCpus(process.pid, "0");
  say("pinned workerd to CPU 1, this process and the load generator to CPU 0");
  return onCleanup(async () => pinCpus(process.pid, `0-${cpus().length - 1}`));
}
