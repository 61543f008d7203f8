/**
 * The query string the origin gets. A forwarding stage, beside headers.ts: like the header cleaning it
 * decides which of the client's bytes reach the origin, and the gate consults it once per request. The raw
 * query is never re-serialized (URLSearchParams would turn `%20` into `+`, `%7E` into `~`, `a` into `a=`):
 * only whole `&`-separated pairs are dropped, every other byte is forwarded as sent, so an origin that signs,
 * caches or routes on the raw query sees what the client sent.
 */

/**
 * Query-string method overrides honoured by origin frameworks (Laravel/Symfony `_method`, Express
 * method-override with a query getter, and the header names some frameworks also read from the query).
 */
const METHOD_OVERRIDES = new Set(["_method", "x-http-method-override", "x-http-method", "x-method-override"]);

/**
 * The names one `&`-separated pair carries: its name exactly as URLSearchParams decodes it (`+` = space,
 * lenient `%`), and, when it contains `;`, the names of its `;`-separated pieces, as parsers that also split
 * on `;` read them (Rack 2, Python before 3.9.2): `a=1;_method=DELETE` carries `_method` for those.
 */
function pairNames(pair: string): string[] {
  // The leading `&` keeps URLSearchParams from dropping a `?` the pair itself starts with.
  const names = [...new URLSearchParams(`&${pair}`).keys()];
  return pair.includes(";") ? [...names, ...new URLSearchParams(`&${pair.replace(/;/g, "&")}`).keys()] : names;
}

/**
 * Whether a decoded parameter name is a method override: any case; `-` and `_` alike in the `x-` names;
 * and as PHP reads names (Laravel, Symfony): leading spaces dropped, `.` and space read as `_`, `name[...]`
 * as `name`, so `?.method=DELETE` and `?_method[]=DELETE` count too.
 */
export function isMethodOverrideParam(name: string): boolean {
  const base = name.toLowerCase().replace(/^ +/, "").split("[", 1)[0]!.replace(/[. ]/g, "_");
  return base === "_method" || METHOD_OVERRIDES.has(base.replace(/_/g, "-"));
}

/**
 * `search` (as `URL.search`: empty or starting with `?`) without the pairs carrying a decoded name `drop`
 * picks. Returns `search` itself when nothing is dropped; `?` is kept only when something is left.
 */
export function withoutParams(search: string, drop: (name: string) => boolean): string {
  if (search === "") return search;
  const pairs = search.slice(1).split("&");
  // Every name is shown to `drop` (no short-circuit), so a caller can also note what it saw.
  const kept = pairs.filter((pair) => !pairNames(pair).reduce((dropped, name) => drop(name) || dropped, false));
  if (kept.length === pairs.length) return search;
  const rest = kept.join("&");
  return rest === "" ? "" : `?${rest}`;
}

export interface ForwardedQuery {
  /** The query to forward: method overrides and (when asked) `access_token` removed. */
  search: string;
  /** The client's query carried a method override (refused when `methods.override_headers = "reject"`). */
  methodOverride: boolean;
}

/**
 * The query the origin gets. `stripToken` (forward.authorization = "strip") removes every `access_token`,
 * whether or not the gate read it (token.allow_query): the origin never receives a client credential the
 * configuration says is stripped.
 */
export function forwardedQuery(search: string, stripToken: boolean): ForwardedQuery {
  // One pass over the pairs (this runs on every request with a query).
  let methodOverride = false;
  const forwarded = withoutParams(search, (name) => {
    if (isMethodOverrideParam(name)) return (methodOverride = true);
    return stripToken && name === "access_token";
  });
  return { search: forwarded, methodOverride };
}
