/**
 * The one bounded cache of the gate: a Map that holds at most `limit` entries and, when full, drops the
 * least recently used. `get` and `set` count as a use; `has` does not (a membership test never keeps an
 * entry alive). Every per-isolate memory an attacker can grow (verified tokens, introspection answers,
 * imported keys, unknown `kid`s, parsed secrets, tokens seen active) is one of these, so a flood of new
 * keys only ever pushes old ones out. Expiry, where an entry has one, is the caller's: it lives in the value.
 */
export class BoundedMap<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(readonly limit: number) {}

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    // Re-inserted: a Map iterates in insertion order, so the first key is always the least recently used.
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.limit) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, value);
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
