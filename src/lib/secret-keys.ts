import type { JWK } from "jose";
import { secretText } from "./bindings";
import { BoundedMap } from "./bounded-map";

/**
 * Key rings held in wrangler secrets: a private JWK, or `{"keys": [...]}`. The secret is read per request (it
 * may change at any time) and parsed once per secret text. Each caller builds its own ring from the JWKs,
 * keeping its own algorithm rules, and names its own errors; the secret and the parse error (which may
 * quote the key) are never echoed.
 */

/** Secret texts whose parsed rings are kept, per caller: rotations come and go, a flood of them cannot grow this. */
const RINGS_KEPT = 16;

export interface SecretKeyErrors {
  /** The binding holds no secret (unset, not text, or empty). */
  missing: () => Error;
  /** The secret does not parse, or `build` refused it. */
  invalid: () => Error;
}

export class SecretKeyRings<Ring> {
  readonly #parsed = new BoundedMap<string, Ring>(RINGS_KEPT);

  constructor(private readonly errors: SecretKeyErrors) {}

  /** The ring in the secret `binding` holds, built by `build` (which throws, with anything, to refuse a key). */
  async load(binding: unknown, build: (jwks: JWK[]) => Promise<Ring>): Promise<Ring> {
    const secret = secretText(binding);
    if (secret === undefined) throw this.errors.missing();
    const cached = this.#parsed.get(secret);
    if (cached) return cached;
    let ring: Ring;
    try {
      ring = await build(privateJwks(secret));
    } catch {
      throw this.errors.invalid();
    }
    this.#parsed.set(secret, ring);
    return ring;
  }
}

/** The JWKs of the secret's text: one JWK, or the members of `keys`. */
function privateJwks(secret: string): JWK[] {
  const value = JSON.parse(secret) as JWK | { keys: JWK[] };
  return "keys" in value && Array.isArray(value.keys) ? value.keys : [value as JWK];
}
