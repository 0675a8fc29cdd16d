// The operator's tools on the blotter: the header (engaged kill switches with their release,
// open exceptions, FIX sessions; polled every few seconds from /api/blotter/header/) and the
// block side panel (executions, ClOrdIDs, broker OrderID, reject, message history).
// Data is only ever rendered as text (textContent), never as HTML.
(function () {
  const $ = (sel) => document.querySelector(sel);
  const blotter = window.OMSBlotter;
  const POLL_MS = 3000;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function when(iso) { return iso ? new Date(iso).toLocaleTimeString() : ""; }
  function table(headers, rows, testid) {
    const t = el("table");
    if (testid) t.dataset.testid = testid;
    const head = el("tr");
    for (const h of headers) head.append(el("th", h.label, h.num ? "num" : ""));
    t.append(el("thead"));
    t.tHead.append(head);
    const body = el("tbody");
    for (const row of rows) {
      const tr = el("tr");
      headers.forEach((h, i) => tr.append(el("td", row[i], h.num ? "num" : "")));
      body.append(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "none");
      td.colSpan = headers.length;
      tr.append(td);
      body.append(tr);
    }
    t.append(body);
    return t;
  }

  // ---- the header ----
  const bannersEl = $("[data-testid=kill-switches]");
  const sessionsEl = $("[data-testid=fix-sessions]");
  const exceptionsEl = $("[data-testid=exceptions-open]");

  function renderKillSwitches(switches) {
    bannersEl.replaceChildren();
    for (const s of switches) {
      const banner = el("div", null, "kill-banner");
      banner.dataset.switch = s.id;
      banner.dataset.scope = s.scope;
      banner.append(el("span", "KILL SWITCH ENGAGED: " + s.label + " since " + when(s.engaged_at) +
        (s.engaged_by ? " by " + s.engaged_by : "")));
      const release = el("button", "Release…");
      release.type = "button";
      release.dataset.action = "release";
      release.addEventListener("click", () => releaseSwitch(s));
      banner.append(release);
      bannersEl.append(banner);
    }
  }
  function renderSessions(sessions) {
    sessionsEl.replaceChildren();
    for (const s of sessions) {
      const on = s.logged_on;
      const chip = el("span", null, "session " + (on === true ? "up" : on === false ? "down" : ""));
      chip.dataset.broker = s.broker;
      let text = s.broker + ": " + (on === true ? "logged on" : on === false ? "down" : "unknown");
      if (s.next_sender_seq_num != null || s.next_target_seq_num != null) {
        text += " (out " + (s.next_sender_seq_num ?? "?") + ", in " + (s.next_target_seq_num ?? "?") + ")";
      }
      if (s.last_message_at) text += " · " + when(s.last_message_at);
      chip.textContent = text;
      sessionsEl.append(chip);
    }
  }
  function renderExceptions(exceptions) {
    const n = exceptions.open;
    exceptionsEl.textContent = n + " open exception" + (n === 1 ? "" : "s");
    exceptionsEl.classList.toggle("some", n > 0);
    exceptionsEl.title = Object.entries(exceptions.by_kind).map(([k, v]) => k + ": " + v).join("\n");
  }
  async function refreshHeader() {
    const resp = await OMS.api("/api/blotter/header/").catch(() => ({ ok: false }));
    if (!resp.ok) return;
    renderKillSwitches(resp.body.kill_switches);
    renderSessions(resp.body.sessions);
    renderExceptions(resp.body.exceptions);
  }

  async function releaseSwitch(s) {
    const dialog = $("#release-dialog");
    const form = dialog.querySelector("form");
    form.reset();
    dialog.querySelector("[data-field=label]").textContent = s.label;
    if (!(await blotter.askDialog(dialog))) return;
    const reason = String(new FormData(form).get("reason") || "").trim();
    if (!reason) { blotter.say("Kill switch not released: give a reason.", true); return; }
    const resp = await OMS.api("/api/kill-switches/" + s.id + "/release/", {
      method: "POST", json: { reason: reason },
    });
    if (!resp.ok) { blotter.say(blotter.failure(resp), true); return; }
    blotter.say("Kill switch released (" + s.label + ").");
    refreshHeader();
  }

  // ---- the block side panel ----
  const panel = $("#block-panel");
  const panelBody = panel.querySelector("[data-field=body]");
  let panelBlock = null;
  let panelShown = "";  // the last answer rendered: a poll that brings nothing new keeps the panel as it is
  panel.querySelector("[data-action=panel-close]").addEventListener("click", () => {
    panel.hidden = true;
    panelBlock = null;
  });

  function rejectText(reject) {
    if (!reject) return "";
    return reject.text || [reject.source, reject.tag, reject.message].filter(Boolean).join(": ");
  }
  function renderPanel(b) {
    panel.querySelector("[data-field=id]").textContent = b.id;
    panelBody.replaceChildren();
    const dl = el("dl");
    const facts = [
      ["Status", b.status],
      ["Order", b.side + " " + b.quantity + " " + b.security__symbol + " " + b.order_type +
        (b.limit_price ? " " + b.limit_price : "")],
      ["Filled", b.cum_qty + (b.avg_price ? " @ " + b.avg_price : "")],
      ["Broker", (b.broker__code || "") + (b.strategy ? " · " + b.strategy : "")],
      ["ClOrdID", b.cl_ord_id],
      ["Broker OrderID", b.broker_order_id],
    ];
    if (b.send_state) facts.push(["Outbox", b.send_state + (b.session_down ? " (session down)" : "")]);
    for (const [k, v] of facts) { dl.append(el("dt", k)); dl.append(el("dd", v || "—")); }
    if (b.last_reject) {
      dl.append(el("dt", "Reject"));
      const dd = el("dd", rejectText(b.last_reject), "reject");
      dd.dataset.testid = "block-reject";
      dl.append(dd);
    }
    panelBody.append(dl);

    panelBody.append(el("h3", "Executions"));
    panelBody.append(table(
      [{ label: "ExecID" }, { label: "Type" }, { label: "Qty", num: true },
       { label: "Price", num: true }, { label: "Time" }, { label: "State" }],
      b.executions.map((x) => [x.exec_id, x.exec_type, x.last_qty, x.last_px,
                               when(x.received_at), x.state]),
      "block-executions"));

    panelBody.append(el("h3", "ClOrdIDs"));
    panelBody.append(table(
      [{ label: "Kind" }, { label: "ClOrdID" }, { label: "Orig" }, { label: "Outbox" }, { label: "Sent" }],
      b.cl_ord_ids.map((c) => [c.kind, c.cl_ord_id, c.orig_cl_ord_id, c.status, when(c.sent_at)]),
      "block-clordids"));

    panelBody.append(el("h3", "Messages"));
    const list = el("div");
    list.dataset.testid = "block-messages";
    for (const m of b.messages) {
      const details = el("details");
      details.append(el("summary", when(m.at) + " " + (m.direction === "IN" ? "←" : "→") + " " +
        m.msg_type + " " + m.msg_type_name + (m.seq_num != null ? " #" + m.seq_num : "")));
      details.append(table(
        [{ label: "Tag", num: true }, { label: "Field" }, { label: "Value" }],
        m.fields.map((f) => [f.tag, f.name || "(unknown)", f.value + (f.meaning ? " (" + f.meaning + ")" : "")])));
      list.append(details);
    }
    if (!b.messages.length) list.append(el("p", "No messages."));
    panelBody.append(list);
  }
  async function openPanel(blockId) {
    if (blockId !== panelBlock) panelShown = "";
    panelBlock = blockId;
    panel.hidden = false;
    const resp = await OMS.api("/api/blocks/" + encodeURIComponent(blockId) + "/detail/");
    if (panelBlock !== blockId) return;  // another block was opened meanwhile
    if (!resp.ok) {
      panelBody.replaceChildren(el("p", blotter.failure(resp), "reject"));
      return;
    }
    const shown = JSON.stringify(resp.body);
    if (shown === panelShown) return;
    panelShown = shown;
    renderPanel(resp.body);
  }

  refreshHeader();
  setInterval(() => {
    refreshHeader();
    if (panelBlock != null && !document.hidden) openPanel(panelBlock);
  }, POLL_MS);
  window.OMSBlockPanel = { open: openPanel };
})();
