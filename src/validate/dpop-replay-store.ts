import { DurableObject } from "cloudflare:workers";

/**
 * The DPoP replay store (RFC 9449 section 11.1): a proof's `jti` is accepted once. Single-use state needs a
 * strongly consistent store, so it is a Durable Object: one object per proof key (`idFromName(jkt)`), so
 * one busy client serializes only its own requests, and each object records that key's `jti`s until their
 * proofs can no longer be accepted anyway (`iat` + window + clock tolerance). The check-and-set is one
 * synchronous SQLite transaction inside the object: nothing can interleave between "not seen" and "seen".
 * An alarm deletes expired rows.
 */

export class DpopReplayStore extends DurableObject {
  /** The alarm is known to be set (or none is needed): saves a storage round trip per claim. */
  #alarmKnown = false;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (jti TEXT PRIMARY KEY, expires INTEGER NOT NULL)");
  }

  /**
   * True exactly once per `jti` until `expiresAt` (epoch ms): false when it was seen and has not expired
   * at `now` (epoch ms, the gate's clock).
   */
  async claim(jti: string, now: number, expiresAt: number): Promise<boolean> {
    const sql = this.ctx.storage.sql;
    const seen = sql.exec<{ expires: number }>("SELECT expires FROM seen WHERE jti = ?", jti).toArray()[0];
    if (seen && seen.expires >= now) return false;
    sql.exec("INSERT OR REPLACE INTO seen (jti, expires) VALUES (?, ?)", jti, expiresAt);
    // After the decision (already durable with the write above): cleanup scheduling never delays a replay check.
    if (!this.#alarmKnown) {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(expiresAt);
      this.#alarmKnown = true;
    }
    return true;
  }

  /** Deletes what has expired; wakes again for the earliest remaining entry. */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM seen WHERE expires < ?", Date.now());
    const next = sql.exec<{ next: number | null }>("SELECT MIN(expires) AS next FROM seen").toArray()[0]?.next;
    this.#alarmKnown = next !== null && next !== undefined;
    if (this.#alarmKnown) await this.ctx.storage.setAlarm(Math.max(next!, Date.now() + 1_000));
  }
}

