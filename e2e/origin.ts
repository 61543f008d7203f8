import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the origin received it. */
export interface OriginRequest {
  method: string;
  /** Path and query, as sent on the request line. */
  path: string;
  /** Header names lower-cased by Node; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Header names exactly as they arrived on the wire, in order. */
  rawNames: string[];
}

export interface Origin {
  url: string;
  requests: OriginRequest[];
  /** The requests received for exactly this path (query included). */
  seen(path: string): OriginRequest[];
  close(): Promise<void>;
}

/** A loopback origin that records method, path and every header, and answers 200 JSON. */
export async function startOrigin(): Promise<Origin> {
  const requests: OriginRequest[] = [];
  const server = createServer((request, response) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    const record: OriginRequest = {
      method: request.method ?? "",
      path: request.url ?? "",
      headers,
      rawNames: request.rawHeaders.filter((_, i) => i % 2 === 0),
    };
    request.resume();
    request.on("end", () => {
      requests.push(record);
      const body = JSON.stringify({ ok: true, method: record.method, path: record.path });
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    seen: (path) => requests.filter((request) => request.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
