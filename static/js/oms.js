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

  // One number formatter for every page. Values arrive as exact decimal strings; Intl formats
  // strings without going through a float, so nothing is rounded away that the tick keeps.
  const LOCALE = document.documentElement.lang || "en";
  const formats = new Map();
  function numberFormat(options) {
    const key = JSON.stringify(options);
    if (!formats.has(key)) formats.set(key, new Intl.NumberFormat(LOCALE, options));
    return formats.get(key);
  }
  function decimalsOf(step) {
    const s = step == null ? "" : String(step);
    if (!/^\d*\.?\d*$/.test(s) || s.indexOf(".") < 0) return 0;
    return s.split(".")[1].replace(/0+$/, "").length;
  }
  function minorUnit(currency) {
    try {
      return numberFormat({ style: "currency", currency: String(currency) }).resolvedOptions().maximumFractionDigits;
    } catch (err) {
      return 2;  // an unknown code still shows as money, in cents
    }
  }
  function plain(value) {
    if (value == null || value === "") return null;
    const s = String(value).trim();
    return /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s) ? s : null;
  }
  // Quantities: separators, the decimals the value has (none where whole).
  function qty(value) {
    const s = plain(value);
    return s == null ? (value == null ? "" : String(value)) : numberFormat({ maximumFractionDigits: 8 }).format(s);
  }
  // Prices: at least the tick's decimals, so a column lines up; an average keeps its extra places.
  function price(value, tick) {
    const s = plain(value);
    if (s == null) return value == null ? "" : String(value);
    const places = tick ? decimalsOf(tick) : 2;
    return numberFormat({ minimumFractionDigits: places, maximumFractionDigits: Math.max(places, 8) }).format(s);
  }
  // Money: exactly the currency's minor unit (JPY 0, USD 2, KWD 3).
  function money(value, currency) {
    const s = plain(value);
    if (s == null) return value == null ? "" : String(value);
    const places = currency ? minorUnit(currency) : 2;
    return numberFormat({ minimumFractionDigits: places, maximumFractionDigits: places }).format(s);
  }
  function percent(value) {
    const s = plain(value);
    return s == null ? "" : numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(s) + "%";
  }
  const KINDS = { qty: qty, price: price, money: money, percent: percent };
  // Server-rendered cells carry the raw value (data-fmt="qty|price|money|percent", with
  // data-tick / data-ccy); the text is replaced by the formatted value and data-raw keeps it.
  function formatCell(el, raw) {
    const value = raw !== undefined ? raw : (el.dataset.raw !== undefined ? el.dataset.raw : el.textContent.trim());
    el.dataset.raw = value == null ? "" : String(value);
    const kind = KINDS[el.dataset.fmt] || qty;
    el.textContent = kind(value, el.dataset.tick || el.dataset.ccy);
  }
  function formatAll(root) {
    (root || document).querySelectorAll("[data-fmt]").forEach(function (el) { formatCell(el); });
  }
  // A wide table scrolls inside its own box, so the page itself never scrolls sideways.
  function fitTables(root) {
    (root || document).querySelectorAll("table.grid").forEach(function (table) {
      if (table.parentElement.classList.contains("table-scroll")) return;
      const box = document.createElement("div");
      box.className = "table-scroll";
      table.before(box);
      box.append(table);
    });
  }
  function enhance(root) {
    formatAll(root);
    fitTables(root);
  }
  window.OMS = {
    api: api, cookie: cookie, escape: text, enhance: enhance,
    fmt: { qty: qty, price: price, money: money, percent: percent, cell: formatCell, all: formatAll },
  };
  enhance(document);
})();
