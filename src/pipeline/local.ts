import type { ResolvedConfig } from "../config/schema";
import { errorResponse } from "../errors/challenge";
import { GateError } from "../errors/errors";
import { keyRing } from "../forward/assertion";
import { publicPreflight, readableCrossOrigin } from "../lib/cors";
import type { LogFn } from "../lib/log";
import { METADATA_PREFIX } from "../config/schema";
import type { ProtectedResources } from "./metadata";

/**
 * Answers the gate gives itself, before any rule: the assertion keys the origin's verifier fetches (GET or
 * HEAD), the RFC 9728 metadata documents, and the one answer to every request while the configuration is
 * invalid. With resources configured the gate owns `/.well-known/oauth-protected-resource` and below:
 * GET/HEAD get a configured document or 404, OPTIONS (a browser's preflight) 204 with CORS, other methods
 * 405. Every answer is public and readable cross-origin (lib/cors.ts).
 */

export interface LocalAnswer {
  /** The decision line's `outcome`. */
  outcome: "assertion_keys" | "metadata" | "metadata_not_found" | "metadata_preflight" | "metadata_method";
  /** The answer's status (explain reports it). */
  status: number;
  respond: (env: Record<string, unknown> | undefined) => Promise<Response>;
}

const DOCUMENT_METHODS = "GET, HEAD";

/** The local answer for `url`, if it is one: built once per gate, looked up per request (no allocation). */
export function localAnswers(config: ResolvedConfig, resources: ProtectedResources): (url: URL, method: string) => LocalAnswer | undefined {
  const { assertion } = config.forward;
  const keysPath = assertion?.jwks_path;
  const assertionKeys: LocalAnswer = {
    outcome: "assertion_keys",
    status: 200,
    respond: async (env) => {
      const { publicKeys } = await keyRing(env?.[assertion!.signing_keys]);
      return Response.json({ keys: publicKeys }, { headers: readableCrossOrigin(new Headers({ "cache-control": "public, max-age=300" })) });
    },
  };
  const documents = new Map(
    [...resources.byDocumentPath].map(([path, resource]): [string, LocalAnswer] => {
      const body = JSON.stringify(resource.document);
      const respond = async () => new Response(body, { headers: readableCrossOrigin(new Headers({ "content-type": "application/json", "cache-control": "public, max-age=3600" })) });
      return [path, { outcome: "metadata", status: 200, respond }];
    }),
  );
  const notFound = fixedAnswer("metadata_not_found", 404, "not_found", "No protected resource metadata here");
  const methodNotAllowed = fixedAnswer("metadata_method", 405, "method_not_allowed", "Only GET and HEAD are served here", { allow: `${DOCUMENT_METHODS}, OPTIONS` });
  const preflight: LocalAnswer = { outcome: "metadata_preflight", status: 204, respond: async () => publicPreflight(DOCUMENT_METHODS) };
  return (url, method) => {
    const read = method === "GET" || method === "HEAD";
    if (read && keysPath !== undefined && url.pathname === keysPath) return assertionKeys;
    if (!documents.size || !inMetadataNamespace(url.pathname)) return undefined;
    if (read) return documents.get(url.pathname) ?? notFound;
    return method === "OPTIONS" ? preflight : methodNotAllowed;
  };
}

const inMetadataNamespace = (path: string) => path === METADATA_PREFIX || path.startsWith(`${METADATA_PREFIX}/`);

/** A fixed JSON answer (no token, claim or request detail in it). */
function fixedAnswer(outcome: LocalAnswer["outcome"], status: number, error: string, description: string, extra: Record<string, string> = {}): LocalAnswer {
  const body = JSON.stringify({ error, error_description: description });
  return {
    outcome,
    status,
    respond: async () => new Response(body, { status, headers: readableCrossOrigin(new Headers({ "content-type": "application/json", "cache-control": "no-store", ...extra })) }),
  };
}

/**
 * The answer while the configuration is invalid: 500 to every request, never open, with one log line per
 * request naming each bad field (`fields`: `formatIssues` lines, never values).
 */
export function configInvalidAnswer(fields: readonly string[], log: LogFn): () => Response {
  return () => {
    log({ event: "config_invalid", outcome: "error", status: 500, issues: fields });
    return errorResponse({ realm: "api" }, new GateError("server_error", "config_invalid"));
  };
}
