/**
 * Reading Worker bindings (env members) by their shape. A binding is configuration the gate cannot trust
 * to be there: each reader says undefined for a missing or wrong one, and the caller names the error.
 */

/** A secret's text: a non-empty string, else undefined (unset, or not a secret). */
export function secretText(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** A service binding's `fetch`, called on the binding itself (workerd refuses it called on another object). */
export function serviceFetch(binding: unknown): typeof fetch | undefined {
  const service = binding as { fetch?: unknown } | null | undefined;
  if (!service || typeof service.fetch !== "function") return undefined;
  const bound = service as { fetch: typeof fetch };
  return (input, init) => bound.fetch(input, init);
}

/** The global `fetch`, called unbound: workerd refuses it called as a method of another object. */
export const globalFetch: typeof fetch = (input, init) => fetch(input, init);
