// Row 1 of `npm run bench`: the baseline. No authorization at all: every request is forwarded to the same
// loopback origin (ORIGIN_URL) with its path and query, exactly like the other forwarding rows.
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(new Request(env.ORIGIN_URL + url.pathname + url.search, request));
  },
};
