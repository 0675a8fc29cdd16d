// Live updates for a PM's My orders table (#my-orders, rows carrying data-order-id): follows
// the PM's own websocket feed and rewrites the cells marked data-field="<row key>"; new orders
// are inserted at the top of an unfiltered first page. Text only, never HTML.
(function () {
  const container = document.getElementById("my-orders");
  if (!container) return;
  const tbody = container.querySelector("tbody");
  const LABELS = {
    BUY: "Buy", SELL: "Sell", SELL_SHORT: "Sell short", BUY_TO_COVER: "Buy to cover",
    MARKET: "Market", LIMIT: "Limit", STOP: "Stop", STOP_LIMIT: "Stop limit",
  };
  // The table's columns in order, for rows that arrive live (the template renders the rest).
  const NEW_ROW = [
    ["id"], ["received_at"], ["account"], ["symbol"], ["side"], ["quantity", "num"],
    ["order_type"], ["limit_price", "num"], ["time_in_force"], ["status"], ["cum_qty", "num"],
    ["leaves_qty", "num"], ["avg_price", "num"], ["compliance_status"],
  ];
  const params = new URLSearchParams(location.search);
  const firstPageUnfiltered = Array.from(params.values()).every((v) => v === "") &&
    (!params.get("page") || params.get("page") === "1");

  const PRICES = new Set(["limit_price", "avg_price"]);
  const QUANTITIES = new Set(["quantity", "cum_qty", "leaves_qty"]);
  function show(field, value, row) {
    if (value == null) return "";
    if (PRICES.has(field)) return OMS.fmt.price(value, row.tick_size);
    if (QUANTITIES.has(field)) return OMS.fmt.qty(value);
    if (field === "received_at") return value.slice(0, 19).replace("T", " ");
    return LABELS[value] && (field === "side" || field === "order_type") ? LABELS[value] : String(value);
  }
  function rowFor(id) { return tbody.querySelector('tr[data-order-id="' + Number(id) + '"]'); }
  function update(tr, row) {
    if (Number(tr.dataset.version || 0) > row.version) return;
    tr.dataset.version = row.version;
    tr.dataset.status = row.status;
    for (const cell of tr.querySelectorAll("[data-field]")) {
      const field = cell.dataset.field;
      if (!(field in row)) continue;
      const text = show(field, row[field], row);
      if (cell.textContent !== text) {
        cell.textContent = text;
        cell.classList.remove("flash");
        void cell.offsetWidth;  // restart the flash animation
        cell.classList.add("flash");
      }
    }
  }
  function insert(row) {
    const tr = document.createElement("tr");
    tr.dataset.orderId = row.id;
    for (const [field, cls] of NEW_ROW) {
      const td = document.createElement("td");
      td.dataset.field = field;
      if (cls) td.className = cls;
      td.textContent = show(field, row[field], row);
      tr.append(td);
    }
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    tbody.prepend(tr);
    tr.dataset.version = row.version;
  }
  function apply(rows, live) {
    for (const row of rows) {
      const tr = rowFor(row.id);
      if (tr) update(tr, row);
      else if (live && firstPageUnfiltered) insert(row);
      if (window.OMSOrderDrawer) window.OMSOrderDrawer.refresh(row.id, row.version);
    }
  }
  // A row opens the order drawer (rows that arrive live too: one listener on the body).
  tbody.addEventListener("click", function (event) {
    const tr = event.target.closest("tr[data-order-id]");
    if (!tr || !window.OMSOrderDrawer) return;
    window.OMSOrderDrawer.open(Number(tr.dataset.orderId), event.target.closest("button") || tr);
  });
  const style = document.createElement("style");
  style.textContent = "@keyframes oms-flash{from{background:#ffe58a}to{background:transparent}}" +
    "#my-orders td.flash{animation:oms-flash 1s ease-out}";
  document.head.append(style);

  function start() {
    const feed = new window.OMSOrderFeed({
      path: "/ws/orders/mine/",
      scope: "mine",
      onSnapshot: (rows) => apply(rows, false),
      onRows: (rows) => apply(rows, true),
      onState: (state) => { container.dataset.feed = state; },
    });
    window.OMSMyOrders = { feed: feed.start() };
  }
  if (window.OMSOrderFeed) {
    start();
  } else {
    const script = document.createElement("script");
    script.src = document.currentScript.src.replace(/live_orders\.js(\?.*)?$/, "feed.js");
    script.onload = start;
    document.head.append(script);
  }
})();
