/** Portcullis as a library: the framework-free gate, its Hono adapter, explain, and the origin verifier. */
export { createGate, type Gate, type GateDecision, type GateOutcome, type Identity, type PortcullisOptions, type Env, type WaitUntil } from "./pipeline/gate";
export { portcullis, honoMiddleware, forwardToOrigin, type PortcullisVariables } from "./hono";
export { sendToOrigin, type ForwardOptions, type OriginRequest, type ForwardedDecision } from "./forward/origin";
export { parseConfig, formatIssues, type ConfigIssue, type ConfigResult } from "./config/load";
export type { PortcullisConfig, ResolvedConfig, IssuerConfig, RouteConfig, Algorithm } from "./config/schema";
export { GateError, type ErrorCode } from "./errors/errors";
export { verifyAssertion, memoryReplayStore, AssertionError, type VerifyAssertionOptions, type VerifiedAssertion, type ReplayStore } from "./origin/verify-assertion";
export { explain, explainWithProof, type Explanation, type ExplainRequest, type TokenReport } from "./pipeline/explain";
