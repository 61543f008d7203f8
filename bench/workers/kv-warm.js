// Cold-start helper of `npm run bench`: reads the key set entry (KV_NAME) once and answers 204, so that
// Miniflare's KV emulator (a service of its own in the same workerd) has served one read before the fresh
// isolate under test makes its first. It never calls the origin.
export default {
  async fetch(request, env) {
    const stored = await env.PORTCULLIS_KV.get(env.KV_NAME, "json");
    return new Response(null, { status: stored ? 204 : 500 });
  },
};
