// Where a CPU profile's time goes, per stage of the pipeline (README "Request flow"): each sample is charged
// to the innermost frame that lies in a known source module of the bundle, so a native call (a signature
// verify, a Headers copy) counts for the stage that made it. The bundle must be unminified esbuild output,
// whose `// path` comments name the module of each line.
import { readFileSync } from "node:fs";
import { fmt } from "./stats.mjs";

/** Source module -> stage (first match wins). */
export const STAGES = [
  [/src\/pipeline\/(request|local)\.ts|src\/policy\/path\.ts|src\/lib\/url\.ts/, "request (URL, canonical path, query, local answers)"],
  [/src\/extract\//, "extract (bearer token)"],
  [/src\/validate\/|node_modules\/jose\//, "validate (token cache, JWS, keys, claims; jose)"],
  [/src\/pipeline\/decide\.ts|src\/policy\//, "decide (rule match, requirements)"],
  [/src\/pipeline\/identity\.ts|src\/forward\/headers\.ts|src\/lib\/claim-path\.ts/, "identity (header copy and strip, identity headers)"],
  [/src\/forward\//, "forward (outbound request, origin timeout)"],
  [/src\/pipeline\/decision-log\.ts|src\/lib\/log\.ts/, "log (decision line)"],
  [/src\/pipeline\/gate\.ts|src\/worker\.ts|bench\/workers\//, "gate (the steps' glue, the Worker entry)"],
  [/src\/config\//, "config (parse, validate)"],
];

/** `bundle`: path of the profiled script; `matches(url)`: whether a frame's URL is that script. */
export function stageAttribution(bundle, matches) {
  const moduleAt = [];
  let current = "";
  readFileSync(bundle, "utf8")
    .split("\n")
    .forEach((line, i) => {
      const m = /^\/\/ (\S+\.(?:ts|js|mjs))$/.exec(line);
      if (m) current = m[1];
      moduleAt[i] = current;
    });
  const stageOf = (frame) => {
    if (!matches(frame.url)) return undefined;
    const module = moduleAt[frame.lineNumber] ?? "";
    // Frames in src/lib/ and other helpers are charged to their caller's stage.
    return STAGES.find(([re]) => re.test(module))?.[1];
  };
  return (profile) => {
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    const parent = new Map();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const byStage = new Map();
    let total = 0;
    profile.samples.forEach((sample, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      total += dt;
      let stage;
      for (let at = sample; at !== undefined && !stage; at = parent.get(at)) stage = stageOf(nodes.get(at).callFrame);
      const leaf = nodes.get(sample).callFrame.functionName;
      stage ??= ["(idle)", "(program)", "(garbage collector)"].includes(leaf) ? leaf : "outside the gate's modules (runtime, the harness)";
      byStage.set(stage, (byStage.get(stage) ?? 0) + dt);
    });
    return { byStage, total };
  };
}

/** A Markdown table of µs per request and share per stage. */
export function stageTable({ byStage, total }, requests) {
  const rows = [...byStage].sort((a, b) => b[1] - a[1]).map(([stage, us]) => `| ${stage} | ${fmt(us / requests, 1)} | ${fmt((100 * us) / total, 1)} % |`);
  return ["| stage | µs per request | share of samples |", "|---|---:|---:|", ...rows].join("\n");
}
