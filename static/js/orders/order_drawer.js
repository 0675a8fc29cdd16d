// The PM's order drawer (My orders and the ticket): one order's status timeline, compliance
// results (failing rules first), fills and allocations, and the PM's actions on it. Every
// action goes through the order and compliance APIs, which decide; the drawer only offers what
// GET /api/orders/{id}/ says is possible now ("actions") and shows the API's answer. Text only.
(function () {
  const LABELS = {
    BUY: "Buy", SELL: "Sell", SELL_SHORT: "Sell short", BUY_TO_COVER: "Buy to cover",
    MARKET: "Market", LIMIT: "Limit", STOP: "Stop", STOP_LIMIT: "Stop limit",
  };
  const FIELD_LABELS = {
    quantity: "Quantity", limit_price: "Limit price", stop_price: "Stop price",
    time_in_force: "Time in force", expire_date: "Expire date",
  };
  const TIFS = ["DAY", "GTC", "IOC", "FOK", "GTD", "OPG", "CLS"];
  // Failing rules first: a PM opens the drawer to learn why an order stopped.
  const OUTCOME_ORDER = { BLOCK: 0, WARN: 1, PASS: 2 };
  const esc = function (v) { return OMS.escape(v); };

  let drawer = null;
  let current = null;  // the order shown (the API's body)
  let opener = null;   // focus goes back there on close

  function build() {
    drawer = document.createElement("aside");
    drawer.id = "order-drawer";
    drawer.className = "drawer";
    drawer.hidden = true;
    drawer.setAttribute("role", "dialog");
    drawer.setAttribute("aria-label", "Order details");
    drawer.dataset.testid = "order-drawer";
    drawer.innerHTML =
      '<header><h2 data-part="title"></h2><button type="button" class="secondary" data-close aria-label="Close">Close</button></header>' +
      '<p class="drawer-message" data-part="message" role="status"></p>' +
      '<section data-part="summary"></section>' +
      '<section data-part="actions"></section>' +
      '<section><h3>Compliance</h3><div data-part="compliance"></div></section>' +
      '<section><h3>Status timeline</h3><ol class="timeline" data-part="timeline"></ol></section>' +
      '<section><h3>Fills</h3><div data-part="fills"></div></section>' +
      '<section><h3>Allocations</h3><div data-part="allocations"></div></section>';
    document.body.append(drawer);
    drawer.querySelector("[data-close]").addEventListener("click", close);
    drawer.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); close(); }
    });
    drawer.addEventListener("click", onClick);
    drawer.addEventListener("submit", onSubmit);
  }
  function part(name) { return drawer.querySelector('[data-part="' + name + '"]'); }
  function message(text, isError) {
    const el = part("message");
    el.textContent = text || "";
    el.className = "drawer-message" + (isError ? " error" : " ok");
  }
  function label(value) { return LABELS[value] || (value == null ? "" : String(value)); }
  function when(iso) { return iso ? String(iso).slice(0, 19).replace("T", " ") : ""; }

  function table(columns, rows, empty) {
    if (!rows.length) return '<p class="muted">' + esc(empty) + "</p>";
    return '<table class="grid compact"><thead><tr>' +
      columns.map(function (c) { return "<th" + (c.num ? ' class="num"' : "") + ">" + esc(c.title) + "</th>"; }).join("") +
      "</tr></thead><tbody>" +
      rows.map(function (r) {
        return "<tr>" + columns.map(function (c) {
          return "<td" + (c.num ? ' class="num"' : "") + ">" + esc(c.value(r)) + "</td>";
        }).join("") + "</tr>";
      }).join("") + "</tbody></table>";
  }

  function renderSummary(o) {
    part("title").textContent = "Order " + o.id + " · " + o.account + " · " + label(o.side) + " " + OMS.fmt.qty(o.quantity) + " " + o.symbol;
    const price = o.limit_price ? " @ " + OMS.fmt.price(o.limit_price, o.tick_size) : "";
    part("summary").innerHTML =
      '<dl class="facts">' +
      "<dt>Status</dt><dd data-testid=\"drawer-status\">" + esc(o.status) + "</dd>" +
      "<dt>Security</dt><dd>" + esc(o.symbol + " · " + o.security_name) + "</dd>" +
      "<dt>Terms</dt><dd>" + esc(label(o.order_type) + price + " " + o.time_in_force + (o.expire_date ? " " + o.expire_date : "")) + "</dd>" +
      "<dt>Filled / leaves</dt><dd>" + esc(OMS.fmt.qty(o.cum_qty) + " / " + OMS.fmt.qty(o.leaves_qty) +
        (o.avg_price ? " at " + OMS.fmt.price(o.avg_price, o.tick_size) : "")) + "</dd>" +
      (o.block ? "<dt>Block</dt><dd>" + esc(o.block) + "</dd>" : "") +
      "</dl>";
  }

  function renderActions(o) {
    const a = o.actions || {};
    let html = '<div class="drawer-actions">';
    if (a.override) html += '<button type="button" data-action="override">Acknowledge warning…</button>';
    if (a.amend) html += '<button type="button" class="secondary" data-action="amend">Amend…</button>';
    if (a.cancel) html += '<button type="button" class="danger" data-action="cancel">Cancel order…</button>';
    html += "</div><div data-part=\"action-form\"></div>";
    part("actions").innerHTML = html;
  }

  function renderCompliance(o) {
    const c = o.compliance;
    const box = part("compliance");
    if (!c) { box.innerHTML = '<p class="muted">Not checked yet.</p>'; return; }
    const results = (c.results || []).slice().sort(function (x, y) {
      return (OUTCOME_ORDER[x.outcome] ?? 3) - (OUTCOME_ORDER[y.outcome] ?? 3);
    });
    const cls = c.verdict === "PASS" ? "ok" : c.verdict === "WARN" ? "warn" : "bad";
    let html = '<p>Verdict: <strong class="' + cls + '" data-testid="drawer-verdict">' + esc(c.verdict) + "</strong>" +
      (c.checked_at ? ' <span class="muted">checked ' + esc(when(c.checked_at)) + "</span>" : "") + "</p>";
    html += '<table class="grid compact" data-testid="drawer-rules"><thead><tr><th>Rule</th><th>Outcome</th><th>Message</th></tr></thead><tbody>' +
      results.map(function (r) {
        const rc = r.outcome === "PASS" ? "ok" : r.outcome === "WARN" ? "warn" : "bad";
        return '<tr data-outcome="' + esc(r.outcome) + '"><td>' + esc(r.rule) + '</td><td class="' + rc + '">' + esc(r.outcome) +
          '</td><td class="wrap">' + esc(r.message) + "</td></tr>";
      }).join("") + "</tbody></table>";
    (c.overrides || []).forEach(function (ov) {
      html += '<p class="muted" data-testid="drawer-override">' + esc((ov.verdict === "WARN" ? "Warning acknowledged" : "Block overridden") +
        " by " + ov.by + " at " + when(ov.at) + ": " + ov.reason) + "</p>";
    });
    box.innerHTML = html;
  }

  function eventText(e) {
    const d = e.details || {};
    const bits = [];
    if (d.quantity && d.price) bits.push(OMS.fmt.qty(d.quantity) + " @ " + OMS.fmt.price(d.price, current && current.tick_size));
    if (d.reason) bits.push("reason: " + d.reason);
    if (d.changes) bits.push("changes: " + Object.entries(d.changes).map(function (kv) { return kv[0] + " " + kv[1]; }).join(", "));
    if (d.requested) bits.push("requested: " + Object.entries(d.requested).map(function (kv) { return kv[0] + " " + kv[1]; }).join(", "));
    if (d.text) bits.push(d.text);
    return bits.join("; ");
  }
  function renderTimeline(o) {
    part("timeline").innerHTML = (o.events || []).map(function (e) {
      const move = e.from_status && e.to_status && e.from_status !== e.to_status ? e.from_status + " → " + e.to_status : (e.to_status || "");
      const extra = eventText(e);
      return '<li data-kind="' + esc(e.kind) + '"><span class="muted">' + esc(when(e.at)) + "</span> <strong>" + esc(e.kind.replace(/_/g, " ")) +
        "</strong> " + esc(move) + (e.actor ? ' <span class="muted">by ' + esc(e.actor) + "</span>" : "") +
        (extra ? '<div class="wrap">' + esc(extra) + "</div>" : "") + "</li>";
    }).join("") || '<li class="muted">No events.</li>';
  }

  function renderFills(o) {
    part("fills").innerHTML = table([
      { title: "Time (UTC)", value: function (f) { return when(f.at); } },
      { title: "Quantity", num: true, value: function (f) { return OMS.fmt.qty(f.quantity); } },
      { title: "Price", num: true, value: function (f) { return OMS.fmt.price(f.price, o.tick_size); } },
    ], o.fills || [], "No fills.");
    part("fills").querySelector("table")?.setAttribute("data-testid", "drawer-fills");
    part("allocations").innerHTML = table([
      { title: "Trade date", value: function (a) { return a.trade_date; } },
      { title: "Settles", value: function (a) { return a.settle_date; } },
      { title: "Quantity", num: true, value: function (a) { return OMS.fmt.qty(a.quantity); } },
      { title: "Avg price", num: true, value: function (a) { return OMS.fmt.price(a.avg_price, o.tick_size); } },
      { title: "Net", num: true, value: function (a) { return OMS.fmt.money(a.net_amount, a.currency) + " " + a.currency; } },
    ], o.allocations || [], "No allocations yet (made when the trading day is finalised).");
    part("allocations").querySelector("table")?.setAttribute("data-testid", "drawer-allocations");
  }

  function render(o) {
    current = o;
    drawer.dataset.orderId = o.id;
    drawer.dataset.version = o.version;
    renderSummary(o);
    renderActions(o);
    renderCompliance(o);
    renderTimeline(o);
    renderFills(o);
  }

  function actionForm(kind) {
    const box = part("action-form");
    const o = current;
    if (kind === "cancel") {
      box.innerHTML = '<form data-form="cancel" class="card"><label>Reason (optional)<input name="reason" maxlength="500"></label>' +
        '<span class="error" data-error-for="reason"></span>' +
        '<button type="submit" class="danger">Confirm cancel</button> <button type="button" class="secondary" data-dismiss>Back</button></form>';
    } else if (kind === "override") {
      box.innerHTML = '<form data-form="override" class="card"><label>Why is this warning acceptable? (required, audited)' +
        '<textarea name="reason" rows="2" maxlength="2000"></textarea></label><span class="error" data-error-for="reason"></span>' +
        '<button type="submit">Acknowledge and release</button> <button type="button" class="secondary" data-dismiss>Back</button></form>';
    } else if (kind === "amend") {
      const fields = (o.actions && o.actions.amend_fields) || [];
      box.innerHTML = '<form data-form="amend" class="card">' + fields.map(function (name) {
        let input;
        if (name === "time_in_force") {
          input = '<select name="time_in_force">' + TIFS.map(function (t) {
            return "<option" + (t === o.time_in_force ? " selected" : "") + ">" + t + "</option>";
          }).join("") + "</select>";
        } else if (name === "expire_date") {
          input = '<input name="expire_date" type="date" value="' + esc(o.expire_date || "") + '">';
        } else {
          const value = o[name] == null ? "" : String(o[name]).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
          input = '<input name="' + name + '" inputmode="decimal" value="' + esc(value) + '">';
        }
        return "<label>" + esc(FIELD_LABELS[name] || name) + input + '<span class="error" data-error-for="' + name + '"></span></label>';
      }).join("") + '<p class="error" data-error-for="_form"></p>' +
        '<button type="submit">Send amendment</button> <button type="button" class="secondary" data-dismiss>Back</button></form>';
    }
    const first = box.querySelector("input, textarea, select");
    if (first) first.focus();
  }

  function onClick(event) {
    const button = event.target.closest("[data-action]");
    if (button) { message(""); actionForm(button.dataset.action); return; }
    if (event.target.closest("[data-dismiss]")) part("action-form").innerHTML = "";
  }

  function showErrors(form, error) {
    form.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    if (!error) return;
    let placed = false;
    Object.entries(error.fields || {}).forEach(function (entry) {
      const slot = form.querySelector('[data-error-for="' + entry[0] + '"]');
      if (slot) { slot.textContent = [].concat(entry[1]).join(" "); placed = true; }
    });
    if (!placed) message(error.message || "The request was refused.", true);
  }

  function same(a, b) {
    if (a == null || a === "") return b == null || b === "";
    // "400" typed and "400.00000000" stored are the same quantity.
    if (/^-?\d+(\.\d+)?$/.test(String(a)) && /^-?\d+(\.\d+)?$/.test(String(b))) return Number(a) === Number(b);
    return String(a) === String(b);
  }

  async function onSubmit(event) {
    event.preventDefault();
    const form = event.target;
    const o = current;
    const kind = form.dataset.form;
    let r;
    showErrors(form, null);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      if (kind === "cancel") {
        r = await OMS.api("/api/orders/" + o.id + "/cancel/", { method: "POST", json: { reason: form.elements.reason.value.trim() } });
      } else if (kind === "override") {
        const reason = form.elements.reason.value.trim();
        if (!reason) { showErrors(form, { fields: { reason: ["A reason is required."] } }); return; }
        r = await OMS.api("/api/compliance/overrides/", { method: "POST", json: { order_id: o.id, reason: reason } });
      } else if (kind === "amend") {
        // Only what changed is sent: the API refuses an amendment that changes nothing.
        const changes = {};
        Array.from(form.elements).forEach(function (el) {
          if (!el.name) return;
          const value = el.value.trim();
          if (!same(value, o[el.name])) changes[el.name] = value === "" ? null : value;
        });
        if (!Object.keys(changes).length) { showErrors(form, { fields: { _form: ["Nothing changed."] } }); return; }
        r = await OMS.api("/api/orders/" + o.id + "/", { method: "PATCH", json: changes });
      }
      if (!r.ok) { showErrors(form, r.body && r.body.error); return; }
      const done = { cancel: "Cancel sent.", override: "Warning acknowledged; the order goes to the desk.", amend: "Amendment sent." }[kind];
      await load(o.id);
      message(done + " Status: " + current.status + ".", false);
      document.dispatchEvent(new CustomEvent("oms:order-changed", { detail: { id: o.id } }));
    } catch (err) {
      message("Could not reach the server.", true);
    } finally {
      button.disabled = false;
    }
  }

  let loadSeq = 0;
  async function load(id) {
    const seq = ++loadSeq;
    const r = await OMS.api("/api/orders/" + Number(id) + "/");
    if (seq !== loadSeq) return;  // another order was opened meanwhile
    if (!r.ok) {
      current = null;
      part("title").textContent = "Order " + Number(id);
      ["summary", "actions", "compliance", "timeline", "fills", "allocations"].forEach(function (n) { part(n).innerHTML = ""; });
      message((r.body && r.body.error && r.body.error.message) || "This order cannot be shown.", true);
      return;
    }
    render(r.body);
    drawer.dataset.loaded = "1";
  }

  async function open(id, from) {
    if (!drawer) build();
    opener = from || document.activeElement;
    drawer.hidden = false;
    drawer.dataset.loaded = "";
    message("");
    await load(id);
    drawer.querySelector("[data-close]").focus();
  }
  function close() {
    if (!drawer) return;
    drawer.hidden = true;
    loadSeq++;
    current = null;
    if (opener && opener.focus) opener.focus();
  }
  // A live change of the order shown (the PM's feed) reloads it, unless a form is being filled.
  function refresh(id, version) {
    if (!drawer || drawer.hidden || !current || Number(id) !== current.id) return;
    if (version != null && Number(version) <= current.version) return;
    if (part("action-form").childElementCount) return;
    load(id);
  }
  window.OMSOrderDrawer = { open: open, close: close, refresh: refresh };
})();
