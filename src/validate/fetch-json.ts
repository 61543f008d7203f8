/**
 * Fetching a small JSON document from an issuer (JWKS, RFC 8414 / OIDC metadata) defensively: a timeout,
 * no redirects (a 3xx is a failure, so a compromised or misconfigured host cannot send us elsewhere), a
 * size cap enforced while reading, 200 only, JSON only. Failures carry a short reason for the log and, when
 * the server answered, its status and headers (a rate limit's `Retry-After`); the body is never kept.
 */

export class FetchJsonError extends Error {
  constructor(
    readonly reason: string,
    readonly response?: { status: number; headers: Headers },
  ) {
    super(reason);
    this.name = "FetchJsonError";
  }
}

export interface FetchedJson {
  body: unknown;
  /** `Cache-Control: max-age` in seconds, when the response gave one (and did not say no-store/no-cache). */
  maxAge: number | undefined;
}

export type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

/** How long to wait and how much to read: an issuer's `jwks` or `introspection` settings, as configured. */
export interface FetchLimits {
  timeout_ms: number;
  max_bytes: number;
}

export interface JsonRequest {
  method: "POST";
  headers: Record<string, string>;
  body: string;
}

/** GET (or the given POST) `url`, expecting a 200 JSON answer. Throws FetchJsonError with the reason. */
export async function fetchJson(
  fetcher: Fetcher,
  url: string,
  limits: FetchLimits,
  request?: JsonRequest,
): Promise<FetchedJson> {
  let response: Response;
  try {
    response = await fetcher(url, {
      redirect: "manual",
      signal: AbortSignal.timeout(limits.timeout_ms),
      method: request?.method ?? "GET",
      headers: { accept: "application/json, application/jwk-set+json", ...request?.headers },
      ...(request ? { body: request.body } : {}),
    });
  } catch (error) {
    throw new FetchJsonError(error instanceof Error && error.name === "TimeoutError" ? "timeout" : "network_error");
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    const reason = response.status >= 300 && response.status < 400 ? "redirect" : `status_${response.status}`;
    throw new FetchJsonError(reason, { status: response.status, headers: response.headers });
  }
  const text = await readCapped(response, limits.max_bytes);
  try {
    return { body: JSON.parse(text), maxAge: cacheMaxAge(response.headers.get("cache-control")) };
  } catch {
    throw new FetchJsonError("not_json");
  }
}

export function cacheMaxAge(header: string | null): number | undefined {
  if (!header) return undefined;
  const directives = header.toLowerCase().split(",").map((part) => part.trim());
  if (directives.some((d) => d === "no-store" || d === "no-cache")) return 0;
  const maxAge = directives.find((d) => d.startsWith("max-age="));
  const seconds = maxAge ? Number(maxAge.slice(8)) : Number.NaN;
  return Number.isInteger(seconds) && seconds >= 0 ? seconds : undefined;
}

/** Reads at most `limit` bytes; a larger body is a failure, never a truncation. */
async function readCapped(response: Response, limit: number): Promise<string> {
  if (Number(response.headers.get("content-length")) > limit) {
    await response.body?.cancel();
    throw new FetchJsonError("too_large");
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw new FetchJsonError("too_large");
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof FetchJsonError) throw error;
    throw new FetchJsonError(error instanceof Error && error.name === "TimeoutError" ? "timeout" : "network_error");
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
