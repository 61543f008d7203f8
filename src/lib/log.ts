/**
 * Structured logging: one JSON object per line. Callers pass codes and names only; values that come from
 * a client (tokens, claim values, raw `kid`s) never go into a log line (see `safeKid`).
 */
export type LogFn = (fields: Record<string, unknown>) => void;

export const consoleLog: LogFn = (fields) => {
  console.log(JSON.stringify({ component: "portcullis", ...fields }));
};

/** A `kid` is attacker-controlled: logged only when short and plain, else replaced. */
export function safeKid(kid: unknown): string | undefined {
  if (kid === undefined) return undefined;
  return typeof kid === "string" && /^[A-Za-z0-9._:-]{1,64}$/.test(kid) ? kid : "(unprintable)";
}
