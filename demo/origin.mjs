// DEMO ONLY. The "protected API" behind the demo Worker: it echoes what it received, so you can see
// which identity headers Portcullis set and which client headers it removed. Loopback only.
import { createServer } from "node:http";

export function createOrigin() {
  return createServer((req, res) => {
    let bodyBytes = 0;
    req.on("data", (chunk) => (bodyBytes += chunk.length));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const headers = Object.fromEntries(Object.entries(req.headers).sort(([a], [b]) => a.localeCompare(b)));
      const authHeaders = Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith("x-auth-")));
      const body = {
        origin: "demo echo origin (127.0.0.1:8791)",
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        auth_headers: authHeaders,
        headers,
        body_bytes: bodyBytes,
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body, null, 2) + "\n");
    });
  });
}
