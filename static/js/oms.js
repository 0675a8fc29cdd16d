// Helpers every page shares: CSRF-aware fetch and safe text rendering.
(function () {
  function cookie(name) {
    const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(url, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers = Object.assign({ "Accept": "application/json" }, opts.headers);
    if (opts.method && opts.method !== "GET") opts.headers["X-CSRFToken"] = cookie("csrftoken");
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const resp = await fetch(url, opts);
    let body = null;
    const type = resp.headers.get("Content-Type") || "";
    if (type.includes("json")) body = await resp.json();
    return { ok: resp.ok, status: resp.status, body: body };
  }
  function text(value) {
    const span = document.createElement("span");
    span.textContent = value == null ? "" : String(value);
    return span.innerHTML;
  }
  window.OMS = { api: api, cookie: cookie, escape: text };
})();
