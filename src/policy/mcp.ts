import { MCP_NAMED_METHODS, type McpConfig, type McpOperationConfig } from "../config/schema";

/**
 * MCP operation rules: once the path rule is chosen, which of its `mcp.operations` applies to the JSON-RPC
 * message read from the request (extract/mcp.ts). Pure, and apart from path matching (routes.ts).
 *
 * An operation names a `method`, compared exactly (case and every byte), and, for the methods that address
 * a tool, prompt or resource (`MCP_NAMED_METHODS`), optionally a `name`: exact, or a pattern with one `*`
 * standing for any run of characters (none included, `/` included). Names are compared as the strings
 * they are: no case folding, trimming or Unicode normalization, so `Admin_Reset`, ` admin_reset` and
 * `admin_reset\u0000` are three other names than `admin_reset`.
 *
 * Precedence for one method: an exact name beats a pattern; among patterns the longer literal prefix (the
 * part before `*`) wins, then the longer literal suffix; an operation without `name` (or `name = "*"`,
 * the same thing) comes last. Two operations of one method with the same shape (name, or prefix and
 * suffix) tie and are a configuration error (`operationTies`), as route ties are.
 */

type NamePattern = { kind: "exact"; value: string } | { kind: "glob"; prefix: string; suffix: string } | { kind: "any" };

export interface CompiledOperation {
  /** Its place in `mcp.operations`. */
  index: number;
  method: string;
  name: NamePattern;
  rule: McpOperationConfig;
}

/** The message's operation: its method and, for a named method, the name or URI it addresses. */
export interface OperationRequest {
  method: string;
  name: string | undefined;
}

export function compileOperations(mcp: McpConfig): CompiledOperation[] {
  return mcp.operations.map((rule, index) => ({ index, method: rule.method, name: namePattern(rule.name), rule })).sort(byPrecedence);
}

function namePattern(name: string | undefined): NamePattern {
  if (name === undefined || name === "*") return { kind: "any" };
  const star = name.indexOf("*");
  if (star === -1) return { kind: "exact", value: name };
  return { kind: "glob", prefix: name.slice(0, star), suffix: name.slice(star + 1) };
}

const RANK = { exact: 0, glob: 1, any: 2 } as const;

function byPrecedence(a: CompiledOperation, b: CompiledOperation): number {
  if (a.method !== b.method) return a.method < b.method ? -1 : 1;
  const rank = RANK[a.name.kind] - RANK[b.name.kind];
  if (rank !== 0) return rank;
  if (a.name.kind === "glob" && b.name.kind === "glob") {
    if (a.name.prefix.length !== b.name.prefix.length) return b.name.prefix.length - a.name.prefix.length;
    if (a.name.suffix.length !== b.name.suffix.length) return b.name.suffix.length - a.name.suffix.length;
  }
  return a.index - b.index;
}

const shapeOf = (operation: CompiledOperation): string => `${operation.method}\u0000${JSON.stringify(operation.name)}`;

/** The operation that applies, or undefined (not listed: the caller refuses). */
export function matchOperation(operations: readonly CompiledOperation[], request: OperationRequest): CompiledOperation | undefined {
  return operations.find((operation) => operation.method === request.method && nameMatches(operation.name, request.name));
}

function nameMatches(pattern: NamePattern, name: string | undefined): boolean {
  switch (pattern.kind) {
    case "any":
      return true;
    case "exact":
      return name === pattern.value;
    case "glob":
      return name !== undefined && name.length >= pattern.prefix.length + pattern.suffix.length && name.startsWith(pattern.prefix) && name.endsWith(pattern.suffix);
  }
}

/** Pairs of operations (indexes into `mcp.operations`, first listed first) that tie on precedence. */
export function operationTies(operations: readonly CompiledOperation[]): [number, number][] {
  const seen = new Map<string, number>();
  const ties: [number, number][] = [];
  for (const operation of [...operations].sort((a, b) => a.index - b.index)) {
    const shape = shapeOf(operation);
    const first = seen.get(shape);
    if (first === undefined) seen.set(shape, operation.index);
    else ties.push([first, operation.index]);
  }
  return ties;
}

/** Why an operation's `name` can never match, or undefined: only named methods carry a name. */
export function unmatchableName(operation: McpOperationConfig): string | undefined {
  if (operation.name === undefined || MCP_NAMED_METHODS.has(operation.method)) return undefined;
  return `can never match: ${operation.method} carries no name (names apply to ${[...MCP_NAMED_METHODS.keys()].join(", ")})`;
}

/** The operation as logs and explain show it: `tools/call admin_reset`, `tools/list`; at most 200 characters. */
export function operationLabel(request: OperationRequest): string {
  return (request.name === undefined ? request.method : `${request.method} ${request.name}`).slice(0, 200);
}
