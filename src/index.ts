/** Portcullis as a library: mount `portcullis(config)` in any Hono app, or call the gate directly. */
export { portcullis, createGate, type Gate, type PortcullisVariables } from "./middleware";
export { type GateDecision, type GateOutcome, type Identity, type PortcullisOptions } from "./gate";
export { forwardToOrigin, sendToOrigin, type ForwardOptions, type OriginRequest } from "./forward/origin";
export { parseConfig, formatIssues, type ConfigIssue, type ConfigResult } from "./config/load";
export type { PortcullisConfig, ResolvedConfig, IssuerConfig, RouteConfig, Algorithm } from "./config/schema";
export { GateError, type ErrorCode } from "./errors/errors";
export { verifyAssertion, memoryReplayStore, AssertionError, type VerifyAssertionOptions, type VerifiedAssertion, type ReplayStore } from "./origin/verify-assertion";
export { explain, type Explanation, type ExplainRequest } from "./policy/explain";
