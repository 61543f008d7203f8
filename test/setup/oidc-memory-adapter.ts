import type { Adapter, AdapterPayload } from "oidc-provider";

/** Stored oidc-provider artifacts by `model:id`. */
export type OidcStore = Map<string, { payload: AdapterPayload; expiresAt: number }>;

/**
 * Storage for oidc-provider's artifacts, shared by the test fixture and the e2e suite. The built-in memory
 * adapter works the same but prints a "development-only" warning on every start; this one is silent. The
 * store may outlive one provider instance (the e2e suite restarts the provider with new keys).
 */
export function memoryAdapter(store: OidcStore = new Map()) {
  return (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    const get = (k: string) => {
      const entry = store.get(k);
      if (!entry) return undefined;
      if (entry.expiresAt <= Date.now()) {
        store.delete(k);
        return undefined;
      }
      return entry.payload;
    };
    const findBy = (field: "uid" | "userCode", value: string) => {
      for (const k of store.keys()) {
        if (!k.startsWith(`${model}:`)) continue;
        const payload = get(k);
        if (payload?.[field] === value) return payload;
      }
      return undefined;
    };
    return {
      async upsert(id, payload, expiresIn) {
        store.set(key(id), { payload, expiresAt: typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : Infinity });
      },
      async find(id) {
        return get(key(id));
      },
      async findByUid(uid) {
        return findBy("uid", uid);
      },
      async findByUserCode(userCode) {
        return findBy("userCode", userCode);
      },
      async consume(id) {
        const payload = get(key(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const [k, { payload }] of store) if (payload.grantId === grantId) store.delete(k);
      },
    };
  };
}

