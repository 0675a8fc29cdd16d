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
  // "10k", "1.5m", "2b": the multiplier shifts the decimal point of the typed digits, so the
  // expansion is exact (no float), and the field shows the full number before anything is sent.
  const SHORTHAND = { k: 3, m: 6, b: 9 };
  function expandQuantity(raw) {
    const m = /^\s*(\d+)(?:\.(\d+))?\s*([kmb])\s*$/i.exec(String(raw || "").replace(/,/g, ""));
    if (!m) return null;
    const places = SHORTHAND[m[3].toLowerCase()];
    const fraction = (m[2] || "").padEnd(places, "0");
    const whole = (m[1] + fraction.slice(0, places)).replace(/^0+(?=\d)/, "");
    const rest = fraction.slice(places).replace(/0+$/, "");
    return rest ? whole + "." + rest : whole;
  }
  const quantityHint = document.getElementById("quantity-expanded");
  function showShorthand() {
    const expanded = expandQuantity(form.elements.quantity.value);
    quantityHint.textContent = expanded ? "= " + OMS.fmt.qty(expanded) : "";
    quantityHint.hidden = !expanded;
  }
  function applyShorthand() {
    const expanded = expandQuantity(form.elements.quantity.value);
    if (expanded) form.elements.quantity.value = expanded;
    showShorthand();
  }
  function fields() {
    applyShorthand();
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
    const qty = parseFloat(expandQuantity(form.elements.quantity.value) || form.elements.quantity.value);
    const price = parseFloat(form.elements.limit_price.value) || parseFloat(info.reference_price);
    // Display only: the server computes the stored notional in Decimal.
    fact("notional", qty > 0 && price > 0 ? OMS.fmt.money(String(qty * price), info.currency) + " " + info.currency : "");
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
    fact("reference_price", info.reference_price ? OMS.fmt.price(info.reference_price, info.tick_size) + " " + info.currency : "none");
    fact("lot_tick", OMS.fmt.qty(info.lot_size) + " / " + OMS.fmt.qty(info.tick_size));
    fact("position", OMS.fmt.qty(info.position));
    updateNotional();
  }
  let searchSeq = 0;
  async function search() {
    const q = symbolInput.value.trim();
    if (!q) { results.hidden = true; return; }
    const seq = ++searchSeq;
    const r = await OMS.api("/api/securities/search/?q=" + encodeURIComponent(q));
    if (!r.ok || seq !== searchSeq) return;  // closed or superseded while the answer travelled
    const items = Array.isArray(r.body) ? r.body : (r.body.results || []);
    results.innerHTML = items.map(function (s, i) {
      return '<li role="option" id="security-option-' + i + '"><button type="button" tabindex="-1" class="secondary" style="width:100%;text-align:left;border:0" data-symbol="' +
        OMS.escape(s.symbol) + '">' + OMS.escape(s.symbol) + " · " + OMS.escape(s.name) + "</button></li>";
    }).join("");
    active = -1;
    results.hidden = items.length === 0;
    symbolInput.setAttribute("aria-expanded", String(!results.hidden));
  }
  // The typeahead is a listbox: arrows move the highlighted option, Enter takes it, Escape
  // closes the list. Enter in the symbol field never submits the order.
  let active = -1;
  function options() { return Array.from(results.querySelectorAll("[data-symbol]")); }
  function highlight(index) {
    const all = options();
    if (!all.length) return;
    active = (index + all.length) % all.length;
    all.forEach(function (el, i) { el.parentElement.classList.toggle("active", i === active); });
    all[active].parentElement.scrollIntoView({ block: "nearest" });
    symbolInput.setAttribute("aria-activedescendant", all[active].parentElement.id);
  }
  function closeResults() {
    clearTimeout(searchTimer);  // a search still waiting or travelling must not reopen the list
    searchSeq++;
    results.hidden = true;
    active = -1;
    symbolInput.setAttribute("aria-expanded", "false");
    symbolInput.removeAttribute("aria-activedescendant");
  }
  function choose(symbol) {
    clearTimeout(searchTimer);
    symbolInput.value = symbol;
    closeResults();
    loadInfo();
  }
  symbolInput.addEventListener("keydown", function (event) {
    const open = !results.hidden && options().length > 0;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!open) return;
      event.preventDefault();
      const down = event.key === "ArrowDown";
      highlight(active < 0 ? (down ? 0 : -1) : active + (down ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (open && active >= 0) choose(options()[active].dataset.symbol);
      else if (open && options().length === 1) choose(options()[0].dataset.symbol);
      else { closeResults(); loadInfo(); }
    } else if (event.key === "Escape") {
      if (open) event.preventDefault();
      closeResults();
    }
  });
  results.addEventListener("click", function (event) {
    const button = event.target.closest("[data-symbol]");
    if (!button) return;
    choose(button.dataset.symbol);
  });
  symbolInput.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 200);
  });
  symbolInput.addEventListener("change", loadInfo);
  form.elements.account.addEventListener("change", loadInfo);
  form.elements.quantity.addEventListener("input", function () { showShorthand(); updateNotional(); });
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

  // Submit is two steps: the review (the check's verdict, the notional in the account's
  // currency and its weight in the NAV, the quantity written out), then Confirm. The review
  // belongs to the fields it was made for: any edit withdraws it.
  const reviewBox = document.getElementById("order-review");
  let reviewed = null;
  function withdrawReview() {
    reviewed = null;
    reviewBox.hidden = true;
  }
  function reviewFact(name, value) {
    reviewBox.querySelector('[data-review="' + name + '"]').textContent = value == null || value === "" ? "–" : value;
  }
  function renderReview(data, check) {
    const rv = check.review || {};
    const type = form.elements.order_type.selectedOptions[0].textContent;
    const price = data.limit_price ? " @ " + OMS.fmt.price(data.limit_price, info && info.tick_size) : "";
    reviewFact("order", form.elements.side.selectedOptions[0].textContent + " " + (data.symbol || "").toUpperCase() + " · " +
      type + price + " · " + data.time_in_force + (data.expire_date ? " " + data.expire_date : "") + " · " + data.account);
    reviewFact("quantity", OMS.fmt.qty(data.quantity));
    reviewFact("notional_security", rv.notional_security == null ? "no price to value it" :
      OMS.fmt.money(rv.notional_security, rv.security_currency) + " " + rv.security_currency +
      (rv.price_source === "reference" ? " (at the reference price)" : " (at the limit)"));
    reviewFact("notional", rv.fx_error ? rv.fx_error : rv.notional == null ? "" : OMS.fmt.money(rv.notional, rv.currency) + " " + rv.currency);
    reviewFact("pct_nav", rv.pct_nav == null ? (rv.nav == null ? "" : "no NAV") : OMS.fmt.percent(rv.pct_nav) +
      " of " + OMS.fmt.money(rv.nav, rv.currency) + " " + rv.currency);
    const verdict = reviewBox.querySelector('[data-review="verdict"]');
    verdict.textContent = check.verdict;
    verdict.className = check.verdict === "PASS" ? "ok" : check.verdict === "WARN" ? "warn" : "bad";
    const note = reviewBox.querySelector('[data-review="note"]');
    note.textContent = check.verdict === "BLOCK" ? "Compliance blocks this order: it waits for a Compliance override." :
      check.verdict === "WARN" ? "Compliance warns: you acknowledge the warning (with a reason) after submitting." : "";
    note.hidden = !note.textContent;
    reviewBox.hidden = false;
  }
  async function review() {
    showErrors(null);
    withdrawReview();
    const data = fields();
    panel.innerHTML = "<p>Checking…</p>";
    const r = await OMS.api("/api/compliance/check/", { method: "POST", json: data });
    if (!r.ok) {
      showErrors(r.body && r.body.error);
      panel.innerHTML = "<p class=\"error\">" + OMS.escape((r.body && r.body.error && r.body.error.message) || "Check failed.") + "</p>";
      return;
    }
    OMSCompliance.render(panel, r.body);
    renderReview(data, r.body);
    reviewed = JSON.stringify(data);
    document.getElementById("confirm-submit").focus();
  }
  form.addEventListener("input", withdrawReview);
  form.addEventListener("change", withdrawReview);
  document.getElementById("review-back").addEventListener("click", function () {
    withdrawReview();
    form.elements.quantity.focus();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    review();
  });
  document.getElementById("confirm-submit").addEventListener("click", function () {
    // Fields changed since the review (nothing should, an edit withdraws it): review again.
    if (reviewed === null || JSON.stringify(fields()) !== reviewed) { review(); return; }
    submit();
  });

  async function submit() {
    showErrors(null);
    const button = document.getElementById("confirm-submit");
    button.disabled = true;
    try {
      const r = await OMS.api("/api/orders/", { method: "POST", json: fields(), headers: { "Idempotency-Key": idempotencyKey } });
      if (!r.ok) { showErrors(r.body && r.body.error); return; }
      // The next order is a new request; a retry of this one (network error) keeps the key.
      idempotencyKey = newKey();
      withdrawReview();
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
  }
  // The order just submitted opens in the drawer: its compliance, timeline and actions.
  document.getElementById("open-order").addEventListener("click", function (event) {
    const id = document.getElementById("order-result").dataset.orderId;
    if (id && window.OMSOrderDrawer) window.OMSOrderDrawer.open(Number(id), event.target);
  });
  togglePrices();
  loadInfo();
})();
