import { safeKid, type LogFn } from "../lib/log";
import type { ValidatedToken } from "../validate/token";
import type { Decision } from "./decide";

/**
 * The decision log: one `decision` line per request. The steps fill a `DecisionLine` in as they learn
 * (path, rule, the token's issuer), so a refusal at any step logs what was known up to it. Codes and names
 * only: no token, claim value or raw `kid` (see log.ts).
 */

export interface DecisionLine {
  method: string;
  path?: string;
  rule?: string;
  /** On an MCP route, the operation read (`tools/call admin_reset`), at most 200 characters. */
  operation?: string;
  issuer?: string;
  kid?: string | undefined;
  via?: ValidatedToken["via"];
  report_only?: true;
  would?: { status: number; reason: string };
}

export type DecisionLog = ReturnType<typeof decisionLog>;

/** `allowedToo`: `log.allowed`, also a line per allowed request (report-only lines are always written). */
export function decisionLog(log: LogFn, allowedToo: boolean, now: () => number) {
  return {
    /** The token verified: which issuer, key and validation path (never the token or its claims). */
    token(line: DecisionLine, token: ValidatedToken): void {
      line.issuer = token.issuer;
      line.kid = safeKid(token.kid);
      line.via = token.via;
    },

    /** A local answer (assertion keys, metadata). */
    local(outcome: string, status: number, line: DecisionLine): void {
      log({ event: "decision", outcome, status, ...line });
    },

    allowed(decision: Decision, line: DecisionLine, started: number): void {
      if (decision.report_only) {
        line.report_only = true;
        line.would = decision.would!;
      } else if (!allowedToo) return;
      log({ event: "decision", outcome: decision.outcome, ...line, ms: now() - started });
    },

    denied(status: number, reason: string, line: DecisionLine, started: number): void {
      log({ event: "decision", outcome: "deny", status, reason, ...line, ms: now() - started });
    },

    /** An unexpected failure: refused too (a bug must never open the gate). */
    failed(line: DecisionLine): void {
      log({ event: "decision", outcome: "error", status: 500, reason: "internal_error", ...line });
    },
  };
}
