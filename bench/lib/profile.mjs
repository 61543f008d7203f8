// --profile ROW_ID: a V8 CPU profile of one row's isolate under load, through workerd's inspector, and a
// summary of where the time goes (self and inclusive time per function).
import { writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { OUT } from "./constants.mjs";
import { say } from "./log.mjs";
import { loadJob, runLoad } from "./measure.mjs";
import { stageAttribution, stageTable } from "./stages.mjs";
import { fmt } from "./stats.mjs";

export async function profileRow(row, workerd, settings) {
  const { WebSocket } = await import("ws");
  const target = { port: workerd.portOf[row.worker], workerdPid: workerd.pid };
  say(`priming ${row.id} ...`);
  await runLoad(loadJob(row, target, settings, settings.prime, 1));
  const inspector = await openInspector(WebSocket, workerd.inspectorPort, row.worker);
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: 100 });
  await inspector.send("Profiler.start");
  const result = await runLoad(loadJob(row, target, settings, 0, settings.duration));
  const { result: { profile } } = await inspector.send("Profiler.stop");
  inspector.close();
  const file = join(OUT, `${row.id}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  say(`${row.id} under the profiler: ${fmt(result.rps, 0)} req/s; profile written to ${file} (open in Chrome DevTools)`);
  printHotspots(profile, result.requests);
  // Per stage, for a Worker bundled here unminified (--profile): the Portcullis rows built from src/.
  const script = workerd.scriptOf[row.worker];
  if (script?.startsWith(join(OUT, "workers"))) {
    const attribute = stageAttribution(script, (url) => url.endsWith(basename(script)));
    console.log(`per stage (samples charged to the innermost frame in a gate module):\n${stageTable(attribute(profile), result.requests)}\n`);
  }
}

/** The DevTools protocol on one Worker's isolate: `send` answers the reply to its command. */
async function openInspector(WebSocket, port, worker) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/core:user:${worker}`);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let id = 0;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => socket.close() };
}

/** Self and inclusive time per function (name + bundle location), from the samples. */
function printHotspots(profile, requests) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const label = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url ? url.split("/").pop() : "";
    return `${functionName || "(anonymous)"}${file ? ` ${file}:${lineNumber + 1}` : ""}`;
  };
  const self = new Map();
  const inclusive = new Map();
  let total = 0;
  profile.samples.forEach((sample, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const node = nodes.get(sample);
    self.set(label(node), (self.get(label(node)) ?? 0) + dt);
    const seen = new Set();
    for (let at = sample; at !== undefined; at = parent.get(at)) {
      const name = label(nodes.get(at));
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    }
  });
  const top = (map, n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => `  ${fmt((us / total) * 100, 1).padStart(5)}%  ${fmt(us / requests, 1).padStart(7)} us/req  ${name}`)
      .join("\n");
  console.log(`\nsampled ${fmt(total / 1e6, 2)} s over ${requests} requests (${fmt(total / requests, 1)} us/req of isolate time incl. idle)\n`);
  console.log(`self time, top 40:\n${top(self, 40)}\n`);
  console.log(`inclusive time, top 60:\n${top(inclusive, 60)}\n`);
}
