// The order ticket: security search, live facts (price, notional, position), a what-if
// compliance check, and submission through the order API with an Idempotency-Key.
(function () {
  const form = document.getElementById("order-ticket");
  if (!form) return;
  const panel = document.getElementById("compliance-panel");
  const results = document.getElementById("security-results");
  const symbolInput = form.elements.symbol;
  let info = null;
  let searchTimer = null;
  let idempotencyKey = newKey();

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "t-" + Date.now() + "-" + Math.random().toString(16).slice(2);
  }
  function fact(name, value) {
    form.parentElement.querySelector('[data-fact="' + name + '"]').textContent = value == null || value === "" ? "–" : value;
  }
  function fields() {
    const data = {};
    ["account", "symbol", "side", "quantity", "order_type", "limit_price", "stop_price", "time_in_force", "expire_date", "instructions"].forEach(function (name) {
      const value = (form.elements[name].value || "").trim();
      if (value !== "") data[name] = value;
    });
    return data;
  }
  function showErrors(error) {
    form.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    document.getElementById("ticket-error").textContent = "";
    if (!error) return;
    const unplaced = [];
    Object.entries(error.fields || {}).forEach(function (entry) {
      const slot = form.querySelector('[data-error-for="' + entry[0] + '"]');
      const text = [].concat(entry[1]).join(" ");
      if (slot) slot.textContent = text; else unplaced.push(text);
    });
    if (!error.fields || unplaced.length) {
      document.getElementById("ticket-error").textContent = [error.message].concat(unplaced).join(" ");
    }
  }
  function togglePrices() {
    const type = form.elements.order_type.value;
    form.querySelector('[data-price="limit_price"]').hidden = !(type === "LIMIT" || type === "STOP_LIMIT");
    form.querySelector('[data-price="stop_price"]').hidden = !(type === "STOP" || type === "STOP_LIMIT");
    if (form.querySelector('[data-price="limit_price"]').hidden) form.elements.limit_price.value = "";
    if (form.querySelector('[data-price="stop_price"]').hidden) form.elements.stop_price.value = "";
    const gtd = form.elements.time_in_force.value === "GTD";
    form.querySelector("[data-gtd]").hidden = !gtd;
    if (!gtd) form.elements.expire_date.value = "";
    updateNotional();
  }
  function updateNotional() {
    if (!info) { fact("notional", ""); return; }
    const qty = parseFloat(form.elements.quantity.value);
    const price = parseFloat(form.elements.limit_price.value) || parseFloat(info.reference_price);
    // Display only: the server computes the stored notional in Decimal.
    fact("notional", qty > 0 && price > 0 ? (qty * price).toLocaleString(undefined, { maximumFractionDigits: 2 }) + " " + info.currency : "");
  }
  let infoSeq = 0;
  async function loadInfo() {
    const account = form.elements.account.value;
    const symbol = symbolInput.value.trim();
    const seq = ++infoSeq;
    info = null;
    if (!account || !symbol) return;
    const r = await OMS.api("/api/orders/ticket-info/?account=" + encodeURIComponent(account) + "&symbol=" + encodeURIComponent(symbol));
    if (seq !== infoSeq) return;  // a later lookup (another symbol) owns the display now
    if (!r.ok) {
      ["name", "reference_price", "lot_tick", "position"].forEach(function (n) { fact(n, ""); });
      updateNotional();
      return;
    }
    info = r.body;
    fact("name", info.symbol + " · " + info.name + (info.active ? "" : " (inactive)"));
    fact("reference_price", info.reference_price ? Number(info.reference_price) + " " + info.currency : "none");
    fact("lot_tick", Number(info.lot_size) + " / " + Number(info.tick_size));
    fact("position", Number(info.position).toLocaleString());
    updateNotional();
  }
  async function search() {
    const q = symbolInput.value.trim();
    if (!q) { results.hidden = true; return; }
    const r = await OMS.api("/api/securities/search/?q=" + encodeURIComponent(q));
    if (!r.ok) return;
    const items = Array.isArray(r.body) ? r.body : (r.body.results || []);
    results.innerHTML = items.map(function (s) {
      return '<li><button type="button" class="secondary" style="width:100%;text-align:left;border:0" data-symbol="' +
        OMS.escape(s.symbol) + '">' + OMS.escape(s.symbol) + " · " + OMS.escape(s.name) + "</button></li>";
    }).join("");
    results.hidden = items.length === 0;
  }
  results.addEventListener("click", function (event) {
    const button = event.target.closest("[data-symbol]");
    if (!button) return;
    symbolInput.value = button.dataset.symbol;
    results.hidden = true;
    loadInfo();
  });
  symbolInput.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 200);
  });
  symbolInput.addEventListener("change", loadInfo);
  form.elements.account.addEventListener("change", loadInfo);
  form.elements.quantity.addEventListener("input", updateNotional);
  form.elements.limit_price.addEventListener("input", updateNotional);
  form.elements.order_type.addEventListener("change", togglePrices);
  form.elements.time_in_force.addEventListener("change", togglePrices);
  form.addEventListener("input", function () { idempotencyKey = idempotencyKey || newKey(); });

  document.getElementById("check-button").addEventListener("click", async function () {
    showErrors(null);
    panel.innerHTML = "<p>Checking…</p>";
    const r = await OMS.api("/api/compliance/check/", { method: "POST", json: fields() });
    if (r.status === 404 && !(r.body && r.body.error && r.body.error.fields)) {
      panel.innerHTML = "<p>The compliance check is not available.</p>";
    } else if (!r.ok) {
      showErrors(r.body && r.body.error);
      panel.innerHTML = "<p class=\"error\">" + OMS.escape((r.body && r.body.error && r.body.error.message) || "Check failed.") + "</p>";
    } else {
      OMSCompliance.render(panel, r.body);
    }
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    showErrors(null);
    const button = document.getElementById("submit-button");
    button.disabled = true;
    try {
      const r = await OMS.api("/api/orders/", { method: "POST", json: fields(), headers: { "Idempotency-Key": idempotencyKey } });
      if (!r.ok) { showErrors(r.body && r.body.error); return; }
      // The next order is a new request; a retry of this one (network error) keeps the key.
      idempotencyKey = newKey();
      const box = document.getElementById("order-result");
      box.hidden = false;
      box.querySelector('[data-field="id"]').textContent = r.body.id;
      box.querySelector('[data-field="status"]').textContent = r.body.status;
      box.dataset.orderId = r.body.id;
      OMSCompliance.render(panel, r.body.compliance, "Compliance: " + (r.body.compliance_status || "no result"));
    } catch (err) {
      document.getElementById("ticket-error").textContent = "Could not reach the server; submitting again is safe.";
    } finally {
      button.disabled = false;
    }
  });
  togglePrices();
  loadInfo();
})();
