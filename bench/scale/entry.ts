// What the scale bench measures, bundled by esbuild for Node (bench/lib/scale.mjs).
export { parseConfig } from "../../src/config/load";
export { compileRoutes, matchRoute } from "../../src/policy/routes";
export { pathPolicy } from "../../src/policy/path";
