/** ORIGIN_URL: an http(s) origin only; the path always comes from the canonical request path. */
export function parseOrigin(value: string | undefined): URL | undefined | Error {
  if (value === undefined || value === "") return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return new Error("must be an absolute URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return new Error("must be an http or https URL");
  if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    return new Error("must be an origin only (scheme, host, port): the path is always the request's canonical path");
  }
  return url;
}
