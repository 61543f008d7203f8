// Cold-start reference of `npm run bench` (row 6): the pass-through Worker after one KV read of the key set
// entry Portcullis reads on its first request (KV_NAME, in the same persisted namespace). The floor of a
// cold start with keys in KV: that read plus forwarding, with no checks. A missing entry is a 500, so the
// row proves the read happened.
export default {
  async fetch(request, env) {
    const stored = await env.PORTCULLIS_KV.get(env.KV_NAME, "json");
    if (!stored) return new Response(null, { status: 500 });
    const url = new URL(request.url);
    return fetch(new Request(env.ORIGIN_URL + url.pathname + url.search, request));
  },
};
