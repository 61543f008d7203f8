import { MCP_NAMED_METHODS, type McpConfig } from "../config/schema";
import { GateError, invalidRequest } from "../errors/errors";
import { parseJsonStrict } from "../lib/json";

/**
 * The MCP operation a request carries (README "MCP servers"), for a route with `mcp`: read from a bounded
 * copy of the JSON-RPC body (`read_body`, the default), with the MCP 2026-07-28 `Mcp-Method` / `Mcp-Name`
 * headers required to agree with it (SEP-2243: whoever reads the body must refuse a mismatch), or from the
 * headers alone (`read_body = false`). The body read is the body forwarded, byte for byte.
 *
 * Exactly one JSON-RPC 2.0 message: a batch (an array; JSON-RPC batching left MCP in 2025-06-18) is
 * refused, since its members would each need authorizing and origins disagree on partial answers. GET,
 * HEAD, DELETE and OPTIONS without a body (the 2025-11-25 SSE stream and session end, a preflight under
 * `methods.cors_preflight = "authorize"`) carry no message.
 */

export type McpMessage =
  /** GET, HEAD, DELETE or OPTIONS without a body: no JSON-RPC message. */
  | { kind: "none" }
  /** A request or a notification: `name` is the tool or prompt name or the resource URI of a named method. */
  | { kind: "request" | "notification"; method: string; name: string | undefined }
  /** A response the client sends (to a 2025-11-25 server's request): no method. */
  | { kind: "response" };

export interface ReadMcp {
  message: McpMessage;
  /** The bytes read, to forward instead of the consumed stream (absent: nothing was read). */
  body?: ArrayBuffer;
}

/** Methods whose requests carry no JSON-RPC message when they carry no body. */
const NO_MESSAGE_METHODS = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

/** The message of `request` on an MCP route. Refuses (400, 413) anything it cannot read as one message. */
export async function readMcpRequest(request: Request, mcp: McpConfig): Promise<ReadMcp> {
  if (!mcp.read_body) return { message: mcpMessage(request.method, request.headers, undefined, mcp) };
  const body = request.body ? await readBounded(request, mcp.max_body_bytes) : undefined;
  return { message: mcpMessage(request.method, request.headers, body && new Uint8Array(body), mcp), ...(body ? { body } : {}) };
}

/**
 * The message, from the body bytes (`read_body`) or the headers. Pure: the gate and explain both call it.
 * `body` undefined: there is none (or it is not read).
 */
export function mcpMessage(method: string, headers: Headers, body: Uint8Array | undefined, mcp: Pick<McpConfig, "read_body" | "max_body_bytes">): McpMessage {
  const header = mirroredHeaders(headers);
  if (!mcp.read_body) return fromHeaders(method, headers, header);
  if (body && body.byteLength > mcp.max_body_bytes) throw tooLarge();
  if (!body?.byteLength && NO_MESSAGE_METHODS.has(method)) {
    if (header.method !== undefined || header.name !== undefined) throw mismatch();
    return { kind: "none" };
  }
  checkBodyEncoding(headers);
  const message = fromBody(body ?? new Uint8Array());
  checkAgreement(message, header);
  if (message.kind !== "response" && message.kind !== "none" && message.name === undefined && MCP_NAMED_METHODS.has(message.method)) throw invalidRequest("mcp_name_missing");
  return message;
}

interface Mirrored {
  method: string | undefined;
  /** Decoded from the `=?base64?...?=` sentinel when so encoded. */
  name: string | undefined;
}

function mirroredHeaders(headers: Headers): Mirrored {
  const name = headers.get("mcp-name");
  return { method: headers.get("mcp-method") ?? undefined, name: name === null ? undefined : decodeName(name) };
}

/** MCP 2026-07-28 "Value Encoding": a value outside plain ASCII travels as `=?base64?{UTF-8, Base64}?=`. */
function decodeName(value: string): string {
  const sentinel = /^=\?base64\?(.*)\?=$/s.exec(value);
  if (!sentinel) return value;
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(sentinel[1]!) || sentinel[1]!.length % 4 !== 0) throw new Error("not Base64");
    const bytes = Uint8Array.from(atob(sentinel[1]!), (char) => char.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalidRequest("mcp_header_invalid");
  }
}

const mismatch = () => invalidRequest("mcp_header_mismatch");

/** Headers and body name the same operation, byte for byte; a header naming what the body lacks is a mismatch. */
function checkAgreement(message: McpMessage, header: Mirrored): void {
  const method = message.kind === "response" || message.kind === "none" ? undefined : message.method;
  const name = message.kind === "response" || message.kind === "none" ? undefined : message.name;
  if (header.method !== undefined && header.method !== method) throw mismatch();
  if (header.name !== undefined && header.name !== name) throw mismatch();
}

/**
 * `read_body = false`: the headers alone. Trusted only from a client declaring a protocol version whose
 * servers must refuse a header/body mismatch (2026-07-28 or later), as the transport asks of
 * intermediaries that act on mirrored headers.
 */
function fromHeaders(method: string, headers: Headers, header: Mirrored): McpMessage {
  if (header.method === undefined) {
    if (header.name !== undefined) throw mismatch();
    if (NO_MESSAGE_METHODS.has(method)) return { kind: "none" };
    throw invalidRequest("mcp_method_missing");
  }
  const version = headers.get("mcp-protocol-version");
  if (version === null || !/^\d{4}-\d{2}-\d{2}$/.test(version) || version < "2026-07-28") throw invalidRequest("mcp_protocol_version");
  const named = MCP_NAMED_METHODS.has(header.method);
  if (named && header.name === undefined) throw invalidRequest("mcp_name_missing");
  if (!named && header.name !== undefined) throw mismatch();
  // A header cannot tell a request from a notification; the method decides what it is authorized as.
  return { kind: "request", method: header.method, name: header.name };
}

/**
 * The body is read as UTF-8 (RFC 8259 JSON has no other encoding), so a request declaring anything else is
 * refused: a server that honours `charset` (body-parser accepts every `utf-*`, UTF-7 included, and the SDK's
 * older transports decode with the declared charset) or decodes a content coding would read other text than
 * the gate did, for instance a second `name` hidden in UTF-7 inside a string. Only `charset=utf-8` (any
 * case, quoted or not) is accepted; two joined `Content-Type`s, a repeated `charset` and any
 * `Content-Encoding` but `identity` are refused too.
 */
function checkBodyEncoding(headers: Headers): void {
  const coding = headers.get("content-encoding");
  if (coding !== null && coding.trim().toLowerCase() !== "identity") throw invalidRequest("mcp_body_encoded");
  const type = headers.get("content-type")?.toLowerCase();
  if (type === undefined || !type.includes("charset")) return;
  const charsets = type.split(";").slice(1).filter((parameter) => parameter.split("=", 1)[0]!.trim() === "charset");
  const value = charsets.length === 1 ? charsets[0]!.slice(charsets[0]!.indexOf("=") + 1).trim().replace(/^"(.*)"$/, "$1") : undefined;
  if (type.includes(",") || type.split("charset").length !== 2 || value !== "utf-8") throw invalidRequest("mcp_charset_unsupported");
}

/** One JSON-RPC 2.0 message (UTF-8 JSON, no repeated member names). */
function fromBody(bytes: Uint8Array): McpMessage {
  let value: unknown;
  try {
    value = parseJsonStrict(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw invalidRequest("mcp_body_invalid");
  }
  if (Array.isArray(value)) throw invalidRequest("mcp_batch");
  if (!isObject(value) || value.jsonrpc !== "2.0") throw invalidRequest("mcp_message_invalid");
  checkEnvelopeNames(value, ["jsonrpc", "id", "method", "params", "result", "error"]);
  if (!Object.hasOwn(value, "method")) {
    const response = Object.hasOwn(value, "id") && Object.hasOwn(value, "result") !== Object.hasOwn(value, "error");
    if (!response) throw invalidRequest("mcp_message_invalid");
    return { kind: "response" };
  }
  const { method, params } = value;
  if (typeof method !== "string" || Object.hasOwn(value, "result") || Object.hasOwn(value, "error")) throw invalidRequest("mcp_message_invalid");
  if (params !== undefined && !isObject(params)) throw invalidRequest("mcp_message_invalid");
  const kind = Object.hasOwn(value, "id") ? "request" : "notification";
  const field = MCP_NAMED_METHODS.get(method);
  if (field === undefined) return { kind, method, name: undefined };
  checkEnvelopeNames(params ?? {}, [field]);
  const name = params?.[field];
  // A missing name is refused after the headers are compared (a header naming it is a mismatch).
  if (name !== undefined && typeof name !== "string") throw invalidRequest("mcp_message_invalid");
  return { kind, method, name };
}

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * No member that a case-insensitive reader could take for one of `names` (Go's encoding/json matches
 * `METHOD` or `paramſ` to `method`, `params`): only the exact spelling is the field.
 */
function checkEnvelopeNames(object: JsonObject, names: readonly string[]): void {
  for (const key of Object.keys(object)) {
    if (names.includes(key)) continue;
    if (names.some((name) => key.toLowerCase() === name || key.toUpperCase() === name.toUpperCase())) throw invalidRequest("mcp_message_invalid");
  }
}

/** The body, at most `max` bytes (a declared or actual larger one: 413). */
async function readBounded(request: Request, max: number): Promise<ArrayBuffer> {
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > max) throw tooLarge();
  const reader = request.body!.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    // A stream that fails mid-way (the client went away) is the client's fault, not the gate's.
    const { done, value } = await reader.read().catch(() => {
      throw invalidRequest("mcp_body_unreadable");
    });
    if (done) break;
    length += value.byteLength;
    if (length > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body.buffer;
}

const tooLarge = () => new GateError("payload_too_large", "mcp_body_too_large");
