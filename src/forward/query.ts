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
 * on `;` read them (Rack 2, Python before 3.9.2): `a=1;_method=DELETE` carries `_method` for those. The
 * second list holds only what the `;` reading adds.
 */
function pairNames(pair: string): { names: string[]; semicolonNames: string[] } {
  // The leading `&` keeps URLSearchParams from dropping a `?` the pair itself starts with.
  const names = [...new URLSearchParams(`&${pair}`).keys()];
  if (!pair.includes(";")) return { names, semicolonNames: [] };
  return { names, semicolonNames: [...new URLSearchParams(`&${pair.replace(/;/g, "&")}`).keys()].filter((name) => !names.includes(name)) };
}

/**
 * The names PHP can register for a decoded parameter name (php_register_variable_ex; Laravel, Symfony and
 * every PHP origin read `$_GET` so): cut at the first NUL (`_method%00x` is `_method`), leading spaces
 * dropped, `.` and space read as `_` before the first `[`; a `[` then opens an array (`name[]` is `name`),
 * or, left unclosed, is read as `_` itself (`access[token` is `access_token`). Both readings of a `[` are
 * returned: over-matching only strips or refuses more.
 */
function phpNames(name: string): string[] {
  const cut = name.split("\0", 1)[0]!.replace(/^ +/, "");
  const bracket = cut.indexOf("[");
  const mangle = (text: string) => text.replace(/[. ]/g, "_");
  if (bracket < 0) return [mangle(cut)];
  return [mangle(cut.slice(0, bracket)), `${mangle(cut.slice(0, bracket))}_${cut.slice(bracket + 1)}`];
}

/**
 * Whether a decoded parameter name is a method override: any case; `-` and `_` alike in the `x-` names;
 * and as PHP reads names (`phpNames`), so `?.method=DELETE`, `?_method[]=DELETE` and `?_method%00=DELETE`
 * count too.
 */
export function isMethodOverrideParam(name: string): boolean {
  return namesOverride(phpNames(name.toLowerCase()));
}

const namesOverride = (read: readonly string[]) => read.some((base) => base === "_method" || METHOD_OVERRIDES.has(base.replace(/_/g, "-")));

/**
 * A name some origin reads as `access_token` while the gate's reading (RFC 6750 2.3: exactly that name) does
 * not: another case (ASP.NET Core's query is case-insensitive, and SignalR-style handlers take the token from
 * it) or a PHP spelling (`access.token`, `access_token[]`, `access_token%00`). Such a credential could be
 * neither counted nor checked by the gate.
 */
const isTokenLookalike = (name: string, read: readonly string[]) => name !== "access_token" && read.includes("access_token");

/**
 * `search` (as `URL.search`: empty or starting with `?`) without the pairs carrying a decoded name `drop`
 * picks. Returns `search` itself when nothing is dropped; `?` is kept only when something is left.
 */
export function withoutParams(search: string, drop: (name: string, semicolonPiece: boolean) => boolean): string {
  if (search === "") return search;
  const pairs = search.slice(1).split("&");
  // Every name is shown to `drop` (no short-circuit), so a caller can also note what it saw.
  const kept = pairs.filter((pair) => {
    const { names, semicolonNames } = pairNames(pair);
    const dropped = names.reduce((any, name) => drop(name, false) || any, false);
    return !semicolonNames.reduce((any, name) => drop(name, true) || any, dropped);
  });
  if (kept.length === pairs.length) return search;
  const rest = kept.join("&");
  return rest === "" ? "" : `?${rest}`;
}

export interface ForwardedQuery {
  /** The query to forward: method overrides and (when asked) `access_token` removed. */
  search: string;
  /** The client's query carried a method override (refused when `methods.override_headers = "reject"`). */
  methodOverride: boolean;
  /**
   * The client's query carried a parameter some origins read as `access_token` but the gate does not
   * (`isTokenLookalike`, or `access_token` as a `;`-separated piece): always refused.
   */
  tokenLookalike: boolean;
}

/**
 * The query the origin gets. `stripToken` (forward.authorization = "strip") removes every `access_token`,
 * whether or not the gate read it (token.allow_query): the origin never receives a client credential the
 * configuration says is stripped.
 */
export function forwardedQuery(search: string, stripToken: boolean): ForwardedQuery {
  // One pass over the pairs (this runs on every request with a query).
  let methodOverride = false;
  let tokenLookalike = false;
  const forwarded = withoutParams(search, (name, semicolonPiece) => {
    // As PHP (and, lower-cased, the case-insensitive readers) would read the name: computed once per name.
    const read = phpNames(name.toLowerCase());
    if (namesOverride(read)) return (methodOverride = true);
    if (isTokenLookalike(name, read) || (semicolonPiece && name === "access_token")) tokenLookalike = true;
    return stripToken && name === "access_token";
  });
  return { search: forwarded, methodOverride, tokenLookalike };
}
