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
  // Blocks are parent rows ("B<id>") made here from their orders, which follow as children.
  // AG Grid Community has no tree data: postSortRows keeps the children under their block and
  // an external filter hides the children of a collapsed block.
  const orders = new Map();        // order id -> its latest row
  const blockRowsShown = new Set();  // block ids whose parent row is in the grid
  const collapsed = new Set();     // block ids collapsed by the trader
  const AT_BROKER = new Set(["PENDING_NEW", "WORKING", "PARTIALLY_FILLED", "PENDING_CANCEL",
    "PENDING_REPLACE", "REPLACED", "DONE_FOR_DAY"]);
  const ON_DESK = new Set(["APPROVED", "STAGED"]);

  // Exact sums of decimal strings (quantities, money): scaled BigInts, never floats.
  const SCALE = 8;
  function toScaled(value) {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(value == null ? "" : String(value));
    if (!m) return 0n;
    const digits = BigInt(m[2] + (m[3] || "").padEnd(SCALE, "0").slice(0, SCALE));
    return m[1] ? -digits : digits;
  }
  function fromScaled(n) {
    const neg = n < 0n;
    const s = (neg ? -n : n).toString().padStart(SCALE + 1, "0");
    const whole = s.slice(0, -SCALE), frac = s.slice(-SCALE).replace(/0+$/, "");
    return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
  }
  // Working (at the broker), available (on the desk, not routed) and filled, per order.
  function decorate(row) {
    const leaves = row.leaves_qty == null ? "0" : row.leaves_qty;
    row.kind = "order";
    row.filled = row.cum_qty;
    row.working = AT_BROKER.has(row.status) ? leaves : "0";
    row.available = ON_DESK.has(row.status) ? leaves : "0";
    const price = row.limit_price || row.reference_price;
    // Notional at the limit, else the reference price, in the security's currency.
    row.notional = price ? fromScaled((toScaled(row.quantity) * toScaled(price)) / 10n ** BigInt(SCALE)) : null;
    return row;
  }
  function blockRow(blockId) {
    const children = [];
    for (const row of orders.values()) if (row.block_id === blockId) children.push(row);
    if (!children.length) return null;
    const sum = (field) => fromScaled(children.reduce((t, r) => t + toScaled(r[field]), 0n));
    const first = children[0];
    const filledValue = children.reduce((t, r) => t + toScaled(r.cum_qty) * toScaled(r.avg_price), 0n);
    const cum = children.reduce((t, r) => t + toScaled(r.cum_qty), 0n);
    const distinct = (field) => Array.from(new Set(children.map((r) => r[field]))).sort().join(", ");
    const limits = children.map((r) => r.limit_price).filter((v) => v != null);
    return {
      id: "B" + blockId, kind: "block", block_id: blockId, version: 0,
      received_at: children.map((r) => r.received_at).sort()[0],
      pm: distinct("pm"), account: children.length === 1 ? first.account : children.length + " accounts",
      symbol: first.symbol, side: first.side, tick_size: first.tick_size, currency: first.currency,
      quantity: sum("quantity"), cum_qty: sum("cum_qty"), leaves_qty: sum("leaves_qty"),
      filled: sum("filled"), working: sum("working"), available: sum("available"),
      notional: children.some((r) => r.notional == null) ? null : sum("notional"),
      avg_price: cum ? fromScaled(filledValue / cum) : null,
      limit_price: limits.length === children.length && new Set(limits).size === 1 ? limits[0] : null,
      order_type: distinct("order_type"), time_in_force: distinct("time_in_force"),
      status: first.block_status || distinct("status"), broker: first.broker, strategy: first.strategy,
      reject: children.map((r) => r.reject).find((t) => t) || "",
      child_count: children.length,
    };
  }
  function inCollapsedBlock(data) {
    return !!data && data.kind === "order" && data.block_id != null && collapsed.has(data.block_id);
  }

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
      width: 96,
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

  // The Block cell: a block row's toggle (▾ expanded, ▸ collapsed) and its order count; an
  // order of a block shows the block number, indented under it.
  function BlockCell() {}
  BlockCell.prototype.init = function (params) {
    this.el = document.createElement("span");
    this.refresh(params);
  };
  BlockCell.prototype.getGui = function () { return this.el; };
  BlockCell.prototype.refresh = function (params) {
    const data = params.data;
    this.el.replaceChildren();
    if (!data || data.block_id == null) return true;
    if (data.kind === "block") {
      const open = !collapsed.has(data.block_id);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "tree-toggle";
      button.dataset.toggle = String(data.block_id);
      button.setAttribute("aria-expanded", String(open));
      button.setAttribute("aria-label", (open ? "Collapse" : "Expand") + " block " + data.block_id);
      button.textContent = open ? "▾" : "▸";
      // Its own listener (Enter and Space press a button too); the cell's click, which would
      // open the block panel, does not follow.
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        toggleBlock(data.block_id);
      });
      this.el.append(button, document.createTextNode(" " + data.block_id + " (" + data.child_count + ")"));
    } else {
      this.el.className = "tree-child";
      this.el.textContent = String(data.block_id);
    }
    return true;
  };
  function toggleBlock(blockId) {
    if (collapsed.has(blockId)) collapsed.delete(blockId); else collapsed.add(blockId);
    api.onFilterChanged();
    const node = api.getRowNode("B" + blockId);
    if (node) api.refreshCells({ rowNodes: [node], columns: ["block_id"], force: true });
  }

  function groupKey(data) {
    if (!groupBy || !data) return "";
    const value = data[groupBy];
    return value == null || value === "" ? "—" : String(value);
  }

  const columnDefs = [
    { colId: "group", headerName: "Group", pinned: "left", hide: true, width: 120,
      valueGetter: (p) => groupKey(p.data), sortable: false, filter: false,
      suppressMovable: true, lockVisible: true },
    { field: "received_at", headerName: "Time", width: 92, filter: "agTextColumnFilter",
      valueFormatter: (p) => p.value ? new Date(p.value).toLocaleTimeString() : "",
      sort: "desc" },
    // The block column leads: its toggle opens and closes the block's orders under it.
    { field: "block_id", headerName: "Block", width: 100, filter: "agNumberColumnFilter",
      cellRenderer: BlockCell },
    // A block row's id ("B12") is the grid's key, not an order number: its cell stays empty.
    { field: "id", headerName: "Order", width: 80, filter: "agNumberColumnFilter",
      valueGetter: (p) => p.data && p.data.kind === "order" ? p.data.id : null },
    { field: "pm", headerName: "PM", width: 80 },
    { field: "account", headerName: "Account", width: 100 },
    { field: "symbol", headerName: "Symbol", width: 86 },
    { field: "side", headerName: "Side", width: 80 },
    // Status early: the desk reads it first, and it stays on screen at 1366 px.
    { field: "status", headerName: "Status", width: 140 },
    decimalCol("quantity", "Quantity"),
    decimalCol("working", "Working"),
    decimalCol("available", "Available"),
    decimalCol("cum_qty", "Filled"),
    decimalCol("leaves_qty", "Leaves"),
    { colId: "pct_filled", headerName: "% filled", width: 96, filter: "agNumberColumnFilter",
      valueGetter: (p) => {
        if (!p.data) return null;
        const q = Number(p.data.quantity);
        return q ? (100 * Number(p.data.cum_qty)) / q : 0;
      },
      cellRenderer: FillBar },
    decimalCol("avg_price", "Avg price", "price"),
    decimalCol("limit_price", "Limit", "price"),
    { field: "order_type", headerName: "Type", width: 90 },
    { colId: "notional", headerName: "Notional", type: "rightAligned", width: 130,
      filter: "agNumberColumnFilter",
      valueGetter: (p) => p.data ? asNumber(p.data.notional) : null,
      valueFormatter: (p) => p.data && p.data.notional != null ? OMS.fmt.money(p.data.notional, p.data.currency) : "" },
    { field: "currency", headerName: "Ccy", width: 70 },
    { field: "broker", headerName: "Broker", width: 100 },
    { field: "strategy", headerName: "Strategy", width: 100 },
    // The broker's refusal of the order, a cancel or a replace (its text, as the trader reads it).
    { field: "reject", headerName: "Reject reason", width: 260, tooltipField: "reject",
      cellClass: "reject-cell" },
  ];

  const rowClassRules = {
    "group-first": (p) => !!(p.node && p.node.groupFirst),
    "block-row": (p) => !!(p.data && p.data.kind === "block"),
    "block-child": (p) => !!(p.data && p.data.kind === "order" && p.data.block_id != null),
  };
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
    // Orders are selected; a block row is not (a click on it selects its orders instead).
    rowSelection: { mode: "multiRow", checkboxes: true, headerCheckbox: true,
                    enableClickSelection: false,
                    isRowSelectable: (node) => !!(node.data && node.data.kind === "order") },
    // Dense: at 1366 x 768 the grid shows more than 20 rows.
    theme: agGrid.themeQuartz.withParams({ fontSize: 12, headerFontSize: 12, spacing: 4,
                                            cellHorizontalPadding: 6 }),
    rowHeight: 22, headerHeight: 26, floatingFiltersHeight: 26,
    tooltipShowDelay: 300,
    isExternalFilterPresent: () => collapsed.size > 0,
    doesExternalFilterPass: (node) => !inCollapsedBlock(node.data),
    animateRows: false,
    asyncTransactionWaitMillis: 50,
    // Community edition has no row grouping: keep each group's rows together (the user's sort
    // still orders rows inside a group), mark each group's first row, and count groups above.
    // Blocks: each block's orders follow it, in the user's sort; a block sorts by its totals.
    postSortRows: (params) => {
      const order = new Map();
      params.nodes.forEach((node, i) => order.set(node, i));
      const parents = new Set();
      for (const node of params.nodes) if (node.data && node.data.kind === "block") parents.add(node.data.block_id);
      const children = new Map();
      const top = [];
      for (const node of params.nodes) {
        const d = node.data;
        if (d && d.kind === "order" && d.block_id != null && parents.has(d.block_id)) {
          if (!children.has(d.block_id)) children.set(d.block_id, []);
          children.get(d.block_id).push(node);
        } else {
          top.push(node);  // a block, an order in no block, or one whose block is filtered out
        }
      }
      if (groupBy) {
        top.sort((a, b) => {
          const ka = groupKey(a.data), kb = groupKey(b.data);
          if (ka !== kb) return ka < kb ? -1 : 1;
          return order.get(a) - order.get(b);
        });
      }
      const result = [];
      let previous = null;
      for (const node of top) {
        const key = groupKey(node.data);
        node.groupFirst = !!groupBy && key !== previous;
        previous = key;
        result.push(node);
        const kids = node.data && node.data.kind === "block" ? children.get(node.data.block_id) : null;
        if (kids) for (const kid of kids) { kid.groupFirst = false; result.push(kid); }
      }
      params.nodes.splice(0, params.nodes.length, ...result);
    },
    onModelUpdated: () => scheduleGroupChips(),
    // A block number opens the block's side panel (static/js/blotter/operator.js).
    onCellClicked: (e) => {
      const toggle = e.event && e.event.target.closest && e.event.target.closest("[data-toggle]");
      if (toggle) { toggleBlock(Number(toggle.dataset.toggle)); return; }
      if (e.column.getColId() === "block_id" && e.data && e.data.block_id != null) {
        window.OMSBlockPanel.open(e.data.block_id);
      } else if (e.data && e.data.kind === "block") {
        selectBlockOrders(e.data.block_id);
      }
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
    orders.clear();
    blockRowsShown.clear();
    for (const row of rows) {
      known.set(row.id, row.version);
      orders.set(row.id, decorate(row));
    }
    const blocks = [];
    for (const id of new Set(rows.map((r) => r.block_id).filter((b) => b != null))) {
      blocks.push(blockRow(id));
      blockRowsShown.add(id);
    }
    api.setGridOption("rowData", blocks.concat(rows));
  }
  function applyRows(rows) {
    const add = [], update = [], remove = [];
    const touched = new Set();
    for (const row of rows) {
      const version = known.get(row.id);
      if (version === undefined) add.push(row);
      else if (version <= row.version) update.push(row);
      else continue;  // an older state than the one shown: ignore
      known.set(row.id, row.version);
      const before = orders.get(row.id);
      if (before && before.block_id != null) touched.add(before.block_id);
      if (row.block_id != null) touched.add(row.block_id);
      orders.set(row.id, decorate(row));
    }
    // The blocks these orders left or joined: their parent rows follow (or go).
    for (const id of touched) {
      const parent = blockRow(id);
      if (parent && blockRowsShown.has(id)) update.push(parent);
      else if (parent) { add.push(parent); blockRowsShown.add(id); }
      else if (blockRowsShown.has(id)) { remove.push({ id: "B" + id }); blockRowsShown.delete(id); collapsed.delete(id); }
    }
    if (add.length || update.length || remove.length) {
      api.applyTransactionAsync({ add: add, update: update, remove: remove });
    }
  }
  function selectBlockOrders(blockId) {
    const nodes = [];
    api.forEachNode((node) => {
      if (node.data && node.data.kind === "order" && node.data.block_id === blockId) nodes.push(node);
    });
    api.deselectAll();
    api.setNodesSelected({ nodes: nodes, newValue: true });
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
      if (!node.data || node.data.kind === "block") return;  // orders are counted, not blocks
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
  // A new filter clears the selection: an action must never touch orders the trader no
  // longer sees.
  $("[data-testid=quick-filter]").addEventListener("input", (e) => {
    api.deselectAll();
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
  function selected() { return api.getSelectedRows().filter((r) => r.kind === "order"); }
  function blockIds(rows) {
    return Array.from(new Set(rows.map((r) => r.block_id).filter((b) => b != null)));
  }
  async function post(url, body) {
    const resp = await OMS.api(url, { method: "POST", json: body || {} });
    if (!resp.ok) throw new Error(failure(resp));
    return resp.body;
  }
  // After an action that did something the selection is cleared: the next action starts
  // from a fresh choice, never from orders whose state just changed.
  async function act(fn) {
    try {
      say("");
      const message = await fn();
      if (message) {
        say(message);
        api.deselectAll();
      }
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

  // The route dialog starts from the orders: their side, the tightest limit among them (a
  // buy's lowest, a sell's highest) as a limit order, and their time in force when they share
  // one (else DAY, which no order outlives).
  function prefillRoute(form, rows) {
    const side = rows[0].side;
    const buy = side === "BUY" || side === "BUY_TO_COVER";
    const limits = rows.map((r) => r.limit_price).filter((v) => v != null);
    let tightest = null;
    for (const v of limits) {
      if (tightest == null || (buy ? toScaled(v) < toScaled(tightest) : toScaled(v) > toScaled(tightest))) tightest = v;
    }
    form.elements.order_type.value = tightest == null ? "MARKET" : "LIMIT";
    form.elements.limit_price.value = tightest == null ? "" : tightest;
    form.elements.stop_price.value = "";
    const tifs = new Set(rows.map((r) => r.time_in_force));
    form.elements.time_in_force.value = tifs.size === 1 ? rows[0].time_in_force : "DAY";
    const total = fromScaled(rows.reduce((t, r) => t + toScaled(r.leaves_qty), 0n));
    form.querySelector("[data-field=summary]").textContent =
      side + " " + OMS.fmt.qty(total) + " " + rows[0].symbol + " · " + rows.length + (rows.length === 1 ? " order" : " orders");
  }

  $("[data-action=route]").addEventListener("click", () => act(async () => {
    const rows = selected();
    let blockId = blockFor(rows);
    const dialog = $("#route-dialog");
    const form = dialog.querySelector("form");
    if (!rows.length) throw new Error("Select the orders (or a block) to route.");
    const brokers = await OMS.api("/api/blotter/brokers/");
    const list = (brokers.body && brokers.body.brokers) || [];
    const select = form.elements.broker_id;
    select.replaceChildren();
    for (const b of list) {
      const opt = document.createElement("option");
      opt.value = b.id;
      opt.textContent = b.code + " — " + b.name;
      select.append(opt);
    }
    // The strategies offered are the chosen broker's (routing refuses any other).
    const strategySelect = form.elements.strategy;
    function showStrategies() {
      const broker = list.find((b) => String(b.id) === select.value);
      const names = (broker && broker.strategies) || ["DMA"];
      strategySelect.replaceChildren(...names.map((n) => {
        const opt = document.createElement("option");
        opt.textContent = n;
        return opt;
      }));
    }
    select.onchange = showStrategies;
    showStrategies();
    prefillRoute(form, rows);
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
