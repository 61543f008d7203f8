import { calculateJwkThumbprint, exportJWK, importSPKI, importX509, type JWK } from "jose";
import type { IssuerConfig } from "../config/schema";
import { GateError } from "../errors/errors";
import type { Deps } from "../lib/deps";
import { distinctKeys, toKeyRecord, unusableReason, type KeyRecord } from "./keys";

/**
 * Keys given inline (`issuers[].keys`) for authorization servers that hand resource servers a public key
 * or certificate instead of a JWKS: JWKs, PEM SPKI public keys or X.509 certificates. They pass the same key
 * policy as JWKS keys (an unusable one is skipped with a log line) and the same de-duplication and `kid`
 * conflict rule (`distinctKeys`); a PEM's algorithm is the configured one.
 */
export class StaticKeySet {
  #records: KeyRecord[] | undefined;

  constructor(private readonly issuer: IssuerConfig) {}

  async keys(deps: Deps): Promise<KeyRecord[]> {
    // Loading is pure CPU work; only the settled result is shared between requests.
    this.#records ??= await this.#load(deps);
    return this.#records;
  }

  /** Static keys never change: a `kid` they lack stays unknown, with no fetch. */
  keysAfterMiss(deps: Deps): Promise<KeyRecord[]> {
    return this.keys(deps);
  }

  async refreshScheduled(): Promise<"fresh"> {
    return "fresh";
  }

  async #load(deps: Deps): Promise<KeyRecord[]> {
    const records: KeyRecord[] = [];
    for (const [index, entry] of (this.issuer.keys ?? []).entries()) {
      try {
        const jwk = "pem" in entry && typeof entry.pem === "string" ? await fromPem(entry as { pem: string; alg: string; kid?: string }) : (entry as JWK);
        const reason = unusableReason(jwk);
        if (reason) {
          deps.log({ event: "static_key_skipped", issuer: this.issuer.issuer, key: index, reason });
          continue;
        }
        records.push(await toKeyRecord(jwk));
      } catch {
        deps.log({ event: "static_key_skipped", issuer: this.issuer.issuer, key: index, reason: "malformed_key" });
      }
    }
    if (!records.length) throw new GateError("server_error", "static_keys_unusable");
    return distinctKeys(records, this.issuer, deps.log);
  }
}

async function fromPem(entry: { pem: string; alg: string; kid?: string }): Promise<JWK> {
  const options = { extractable: true };
  const key = entry.pem.startsWith("-----BEGIN CERTIFICATE-----")
    ? await importX509(entry.pem, entry.alg, options)
    : await importSPKI(entry.pem, entry.alg, options);
  const jwk = await exportJWK(key);
  return { ...jwk, alg: entry.alg, kid: entry.kid ?? (await calculateJwkThumbprint(jwk)) };
}
