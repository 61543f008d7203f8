import type { ResolvedConfig } from "../config/schema";
import { errorResponse } from "../errors/challenge";
import { GateError } from "../errors/errors";
import { keyRing } from "../forward/assertion";
import type { LogFn } from "../lib/log";
import { metadataDocument, metadataUrl } from "./metadata";

/**
 * Answers the gate gives itself, before any rule: the assertion keys the origin's verifier fetches and the
 * RFC 9728 metadata document (both public, GET or HEAD only), and the one answer to every request while the
 * configuration is invalid.
 */

export interface LocalAnswer {
  /** The decision line's `outcome`. */
  outcome: "assertion_keys" | "metadata";
  respond: (env: Record<string, unknown> | undefined) => Promise<Response>;
}

/** The local answer for `url`, if it is one: built once per gate, looked up per request (no allocation). */
export function localAnswers(config: ResolvedConfig): (url: URL, method: string) => LocalAnswer | undefined {
  const { assertion } = config.forward;
  const metadata = config.resource_metadata;
  const keysPath = assertion?.jwks_path;
  const metadataPath = metadata && metadataUrl(metadata.resource).pathname;
  const assertionKeys: LocalAnswer = {
    outcome: "assertion_keys",
    respond: async (env) => {
      const { publicKeys } = await keyRing(env?.[assertion!.signing_keys]);
      return Response.json({ keys: publicKeys }, { headers: { "cache-control": "public, max-age=300" } });
    },
  };
  const metadataDocumentAnswer: LocalAnswer = {
    outcome: "metadata",
    respond: async () => Response.json(metadataDocument(config), { headers: { "cache-control": "public, max-age=3600" } }),
  };
  return (url, method) => {
    if (method !== "GET" && method !== "HEAD") return undefined;
    if (keysPath !== undefined && url.pathname === keysPath) return assertionKeys;
    if (metadataPath !== undefined && url.pathname === metadataPath) return metadataDocumentAnswer;
    return undefined;
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
