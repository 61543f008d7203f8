/** Workers KV facts the stages share. */

/** The shortest `expirationTtl` Workers KV accepts, in seconds. */
export const KV_MIN_TTL = 60;
