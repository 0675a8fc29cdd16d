// The trader's blotter: an AG Grid (Community) of every order, kept live by the order feed,
// with the desk's actions (block, route, amend, cancel, cross, kill switch).
// Data is only ever rendered as text (AG Grid's default renderer, textContent), never as HTML.
(function () {
  const $ = (sel) => document.querySelector(sel);
  const notice = $("[data-testid=notice]");
  const STATUSES = [
    "PENDING_COMPLIANCE", "BLOCKED", "AWAITING_OVERRIDE", "APPROVED", "STAGED", "PENDING_NEW",
    "WORKING", "PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL", "CANCELLED", "PENDING_REPLACE",
    "REPLACED", "REJECTED", "EXPIRED", "DONE_FOR_DAY",
  ];
  const GROUP_FIELDS = { symbol: "Symbol", pm: "PM", status: "Status", broker: "Broker" };
  const known = new Map();  // order id -> version, ahead of the grid's async transactions
  let groupBy = "";

  function say(message, isError) {
    notice.textContent = message || "";
    notice.classList.toggle("error", !!isError);
  }
  function failure(resp) {
    const err = resp.body && resp.body.error;
    if (!err) return "Request failed (" + resp.status + ")";
    let text = err.message;
    if (err.fields) text += " " + JSON.stringify(err.fields);
    return text;
  }
  function asNumber(value) { return value == null || value === "" ? null : Number(value); }
  function decimalCol(field, headerName, kind) {
    return {
      field: field, headerName: headerName, type: "rightAligned",
      filter: "agNumberColumnFilter",
      // Numbers only for sorting and filtering; the cell formats the exact decimal string
      // (OMS.fmt), and a CSV export takes the raw value.
      valueGetter: (p) => p.data ? asNumber(p.data[field]) : null,
      valueFormatter: (p) => {
        if (!p.data || p.data[field] == null) return "";
        return kind === "price" ? OMS.fmt.price(p.data[field], p.data.tick_size) : OMS.fmt.qty(p.data[field]);
      },
      width: 110,
    };
  }

  function FillBar() {}
  FillBar.prototype.init = function (params) {
    this.el = document.createElement("div");
    this.el.className = "fillbar";
    this.bar = document.createElement("span");
    this.label = document.createElement("em");
    this.el.append(this.bar, this.label);
    this.refresh(params);
  };
  FillBar.prototype.getGui = function () { return this.el; };
  FillBar.prototype.refresh = function (params) {
    const pct = params.value == null ? 0 : params.value;
    this.bar.style.width = Math.max(0, Math.min(100, pct)) + "%";
    this.label.textContent = pct.toFixed(0) + "%";
    return true;
  };

  function groupKey(data) {
    if (!groupBy || !data) return "";
    const value = data[groupBy];
    return value == null || value === "" ? "—" : String(value);
  }

  const columnDefs = [
    { colId: "group", headerName: "Group", pinned: "left", hide: true, width: 120,
      valueGetter: (p) => groupKey(p.data), sortable: false, filter: false,
      suppressMovable: true, lockVisible: true },
    { field: "received_at", headerName: "Time", width: 100, filter: "agTextColumnFilter",
      valueFormatter: (p) => p.value ? new Date(p.value).toLocaleTimeString() : "",
      sort: "desc" },
    { field: "id", headerName: "Order", width: 90, filter: "agNumberColumnFilter" },
    { field: "pm", headerName: "PM", width: 100 },
    { field: "account", headerName: "Account", width: 110 },
    { field: "symbol", headerName: "Symbol", width: 100 },
    { field: "side", headerName: "Side", width: 90 },
    decimalCol("quantity", "Quantity"),
    decimalCol("cum_qty", "Filled"),
    decimalCol("leaves_qty", "Leaves"),
    { colId: "pct_filled", headerName: "% filled", width: 110, filter: "agNumberColumnFilter",
      valueGetter: (p) => {
        if (!p.data) return null;
        const q = Number(p.data.quantity);
        return q ? (100 * Number(p.data.cum_qty)) / q : 0;
      },
      cellRenderer: FillBar },
    decimalCol("avg_price", "Avg price", "price"),
    decimalCol("limit_price", "Limit", "price"),
    { field: "order_type", headerName: "Type", width: 90 },
    { field: "status", headerName: "Status", width: 150 },
    { field: "block_id", headerName: "Block", width: 80, filter: "agNumberColumnFilter" },
    { field: "broker", headerName: "Broker", width: 100 },
    { field: "strategy", headerName: "Strategy", width: 100 },
  ];

  const rowClassRules = { "group-first": (p) => !!(p.node && p.node.groupFirst) };
  for (const status of STATUSES) {
    rowClassRules["st-" + status] = (p) => !!(p.data && p.data.status === status);
  }

  const gridOptions = {
    columnDefs: columnDefs,
    defaultColDef: {
      sortable: true, resizable: true, filter: "agTextColumnFilter", floatingFilter: true,
      enableCellChangeFlash: true,
    },
    rowData: [],
    getRowId: (p) => String(p.data.id),
    rowClassRules: rowClassRules,
    rowSelection: { mode: "multiRow", checkboxes: true, headerCheckbox: true,
                    enableClickSelection: false },
    animateRows: false,
    asyncTransactionWaitMillis: 50,
    // Community edition has no row grouping: keep each group's rows together (the user's sort
    // still orders rows inside a group), mark each group's first row, and count groups above.
    postSortRows: (params) => {
      if (!groupBy) {
        for (const node of params.nodes) node.groupFirst = false;
        return;
      }
      const order = new Map();
      params.nodes.forEach((node, i) => order.set(node, i));
      params.nodes.sort((a, b) => {
        const ka = groupKey(a.data), kb = groupKey(b.data);
        if (ka !== kb) return ka < kb ? -1 : 1;
        return order.get(a) - order.get(b);
      });
      let previous = null;
      for (const node of params.nodes) {
        const key = groupKey(node.data);
        node.groupFirst = key !== previous;
        previous = key;
      }
    },
    onModelUpdated: () => scheduleGroupChips(),
    // A block number opens the block's side panel (static/js/blotter/operator.js).
    onCellClicked: (e) => {
      if (e.column.getColId() === "block_id" && e.value != null) window.OMSBlockPanel.open(e.value);
    },
    onColumnMoved: (e) => { if (e.finished) saveLayoutSoon(); },
    onColumnResized: (e) => { if (e.finished) saveLayoutSoon(); },
    onColumnVisible: () => saveLayoutSoon(),
    onColumnPinned: () => saveLayoutSoon(),
    onSortChanged: () => saveLayoutSoon(),
    onFilterChanged: () => saveLayoutSoon(),
  };

  const api = agGrid.createGrid($("#blotter-grid"), gridOptions);

  // ---- live rows ----
  function applySnapshot(rows) {
    api.flushAsyncTransactions();
    known.clear();
    for (const row of rows) known.set(row.id, row.version);
    api.setGridOption("rowData", rows);
  }
  function applyRows(rows) {
    const add = [], update = [];
    for (const row of rows) {
      const version = known.get(row.id);
      if (version === undefined) add.push(row);
      else if (version <= row.version) update.push(row);
      else continue;  // an older state than the one shown: ignore
      known.set(row.id, row.version);
    }
    if (add.length || update.length) api.applyTransactionAsync({ add: add, update: update });
  }
  const feedState = $("[data-testid=feed-state]");
  const feed = new OMSOrderFeed({
    path: "/ws/blotter/",
    scope: "blotter",
    onSnapshot: applySnapshot,
    onRows: applyRows,
    onState: (state) => {
      feedState.textContent = state;
      feedState.className = "feed-state " + (state === "live" ? "live" : "down");
    },
  });

  // ---- grouping ----
  const groupSelect = $("[data-testid=group-by]");
  const groupsEl = $("[data-testid=groups]");
  let chipTimer = null;
  function scheduleGroupChips() {
    if (chipTimer) return;
    chipTimer = setTimeout(() => { chipTimer = null; renderGroupChips(); }, 200);
  }
  function renderGroupChips() {
    groupsEl.replaceChildren();
    if (!groupBy) return;
    const counts = new Map();
    api.forEachNodeAfterFilter((node) => {
      const key = groupKey(node.data);
      counts.set(key, (counts.get(key) || 0) + 1);
    });
    for (const [key, count] of Array.from(counts.entries()).sort()) {
      const chip = document.createElement("span");
      chip.className = "session";
      chip.dataset.group = key;
      chip.textContent = GROUP_FIELDS[groupBy] + " " + key + ": " + count;
      groupsEl.append(chip);
    }
  }
  function setGroupBy(value, save) {
    groupBy = GROUP_FIELDS[value] ? value : "";
    groupSelect.value = groupBy;
    api.setColumnsVisible(["group"], !!groupBy);
    api.refreshClientSideRowModel("sort");
    api.redrawRows();
    renderGroupChips();
    if (save) saveLayoutSoon();
  }
  groupSelect.addEventListener("change", () => setGroupBy(groupSelect.value, true));

  // ---- quick filter and column chooser ----
  $("[data-testid=quick-filter]").addEventListener("input", (e) => {
    api.setGridOption("quickFilterText", e.target.value);
  });
  const menu = $("[data-testid=columns-menu]");
  $("[data-action=columns]").addEventListener("click", () => {
    menu.replaceChildren();
    for (const col of api.getColumns()) {
      const def = col.getColDef();
      if (def.colId === "group" || !def.headerName) continue;
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = col.isVisible();
      box.addEventListener("change", () => api.setColumnsVisible([col.getColId()], box.checked));
      label.append(box, document.createTextNode(" " + def.headerName));
      menu.append(label);
    }
    menu.hidden = !menu.hidden;
  });

  // ---- layout, remembered per user ----
  let layoutTimer = null;
  let layoutLoaded = false;
  function saveLayoutSoon() {
    if (!layoutLoaded) return;
    clearTimeout(layoutTimer);
    layoutTimer = setTimeout(() => {
      OMS.api("/api/blotter/layout/", {
        method: "PUT",
        json: { columns: api.getColumnState(), filters: api.getFilterModel(), group_by: groupBy },
      });
    }, 600);
  }
  async function loadLayout() {
    const resp = await OMS.api("/api/blotter/layout/");
    const layout = resp.ok && resp.body ? resp.body : {};
    if (Array.isArray(layout.columns)) api.applyColumnState({ state: layout.columns, applyOrder: true });
    if (layout.filters) api.setFilterModel(layout.filters);
    setGroupBy(layout.group_by || "", false);
    layoutLoaded = true;
  }

  // ---- the desk's actions ----
  function selected() { return api.getSelectedRows(); }
  function blockIds(rows) {
    return Array.from(new Set(rows.map((r) => r.block_id).filter((b) => b != null)));
  }
  async function post(url, body) {
    const resp = await OMS.api(url, { method: "POST", json: body || {} });
    if (!resp.ok) throw new Error(failure(resp));
    return resp.body;
  }
  async function act(fn) {
    try {
      say("");
      const message = await fn();
      if (message) say(message);
    } catch (err) {
      say(err.message, true);
    }
  }
  async function createBlock(rows) {
    const ids = rows.map((r) => r.id);
    const block = await post("/api/blocks/", { order_ids: ids });
    return block;
  }
  function blockFor(rows) {
    if (!rows.length) throw new Error("Select orders first.");
    const ids = blockIds(rows);
    if (ids.length > 1) throw new Error("The selected orders are in different blocks.");
    if (ids.length === 1 && rows.some((r) => r.block_id == null)) {
      throw new Error("Some selected orders are not in the block.");
    }
    return ids.length ? ids[0] : null;
  }
  function askDialog(dialog) {
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }
  function formValues(form) {
    const out = {};
    for (const [key, value] of new FormData(form).entries()) out[key] = String(value).trim();
    return out;
  }

  $("[data-action=block]").addEventListener("click", () => act(async () => {
    const rows = selected();
    if (!rows.length) throw new Error("Select staged orders to block.");
    const block = await createBlock(rows);
    api.deselectAll();
    return "Block " + block.id + ": " + block.side + " " + block.quantity + " " + block.security__symbol;
  }));

  $("[data-action=route]").addEventListener("click", () => act(async () => {
    const rows = selected();
    let blockId = blockFor(rows);
    const dialog = $("#route-dialog");
    const form = dialog.querySelector("form");
    const brokers = await OMS.api("/api/blotter/brokers/");
    const select = form.elements.broker_id;
    select.replaceChildren();
    for (const b of (brokers.body && brokers.body.brokers) || []) {
      const opt = document.createElement("option");
      opt.value = b.id;
      opt.textContent = b.code + " — " + b.name;
      select.append(opt);
    }
    dialog.querySelector("[data-field=block]").textContent = blockId ? String(blockId) : "(new)";
    if (!(await askDialog(dialog))) return "";
    const v = formValues(form);
    if (!blockId) blockId = (await createBlock(rows)).id;
    const params = {};
    if (v.start_time) params.start_time = v.start_time;
    if (v.end_time) params.end_time = v.end_time;
    if (v.participation) params.participation = v.participation;
    const routed = await post("/api/blocks/" + blockId + "/route/", {
      broker_id: Number(v.broker_id),
      order_type: v.order_type,
      limit_price: v.limit_price || null,
      stop_price: v.stop_price || null,
      time_in_force: v.time_in_force,
      expire_date: v.expire_date || null,
      strategy: v.strategy,
      strategy_params: params,
    });
    api.deselectAll();
    return "Block " + routed.id + " routed to " + routed.broker__code;
  }));

  $("[data-action=amend]").addEventListener("click", () => act(async () => {
    const blockId = blockFor(selected());
    if (!blockId) throw new Error("Select orders of a routed block.");
    const dialog = $("#amend-dialog");
    dialog.querySelector("[data-field=block]").textContent = String(blockId);
    if (!(await askDialog(dialog))) return "";
    const v = formValues(dialog.querySelector("form"));
    await post("/api/blocks/" + blockId + "/replace/", {
      quantity: v.quantity || null, limit_price: v.limit_price || null,
    });
    return "Amend sent for block " + blockId + "; pending until the broker answers.";
  }));

  $("[data-action=cancel]").addEventListener("click", () => act(async () => {
    const ids = blockIds(selected());
    if (!ids.length) throw new Error("Select orders of a routed block.");
    for (const id of ids) await post("/api/blocks/" + id + "/cancel/");
    return "Cancel sent for block " + ids.join(", ") + "; pending until the broker answers.";
  }));

  $("[data-action=unblock]").addEventListener("click", () => act(async () => {
    const ids = blockIds(selected());
    if (!ids.length) throw new Error("Select orders of an open block.");
    for (const id of ids) await post("/api/blocks/" + id + "/dissolve/");
    return "Block " + ids.join(", ") + " undone.";
  }));

  $("[data-action=cross]").addEventListener("click", () => act(async () => {
    const rows = selected();
    const buys = rows.filter((r) => r.side === "BUY" || r.side === "BUY_TO_COVER");
    const sells = rows.filter((r) => r.side === "SELL" || r.side === "SELL_SHORT");
    if (rows.length !== 2 || buys.length !== 1 || sells.length !== 1) {
      throw new Error("Select one staged buy and one staged sell to cross.");
    }
    const result = await post("/api/blotter/cross/", {
      buy_order_id: buys[0].id, sell_order_id: sells[0].id,
    });
    api.deselectAll();
    return "Crossed " + result.quantity + " at " + result.price;
  }));

  $("[data-action=block-panel]").addEventListener("click", () => act(async () => {
    const ids = blockIds(selected());
    if (ids.length !== 1) throw new Error("Select orders of one block.");
    window.OMSBlockPanel.open(ids[0]);
    return "";
  }));

  $("[data-action=kill]").addEventListener("click", () => act(async () => {
    const dialog = $("#kill-dialog");
    const form = dialog.querySelector("form");
    form.reset();
    if (!(await askDialog(dialog))) return "";
    const v = formValues(form);
    if (v.confirm !== "KILL") throw new Error("Kill switch not engaged: type KILL to confirm.");
    await post("/api/blotter/kill-switch/", { scope: v.scope, value: v.value });
    return "Kill switch engaged (" + v.scope + (v.value ? " " + v.value : "") + ").";
  }));

  loadLayout().finally(() => feed.start());
  window.OMSBlotter = {
    api: api, feed: feed, known: known, say: say, failure: failure, askDialog: askDialog,
  };
})();
