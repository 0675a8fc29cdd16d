// The market panel of the blotter and positions pages: a snapshot from
// /api/marketdata/quotes/?mine=1, then the "quotes" messages of the page's existing feed
// (OMSQuotes.apply, called by feed.js / live.js). A row not updated within the feed's stale
// time is flagged; without a feed the reference prices are shown and the panel says so.
(function () {
  const panel = document.getElementById("market-panel");
  if (!panel) return;
  const body = document.getElementById("market-rows");
  const status = document.getElementById("market-feed-status");
  const rows = {};
  let staleMs = 15000;
  const fmt = (v) => (v === null || v === undefined ? "—" : String(v));

  function render(symbol) {
    const r = rows[symbol];
    let tr = body.querySelector(`tr[data-symbol="${symbol}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.symbol = symbol;
      body.appendChild(tr);
    }
    const cells = [symbol, r.bid, r.ask, r.last, r.day_volume, r.day_vwap, r.stale ? "stale" : r.source];
    tr.innerHTML = "";
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      if (i && i < 6) td.className = "num";
      td.textContent = fmt(v);
      tr.appendChild(td);
    });
    tr.classList.toggle("stale", !!r.stale);
    tr.dataset.stale = r.stale ? "1" : "0";
  }

  async function snapshot() {
    const response = await fetch("/api/marketdata/quotes/?mine=1", { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    staleMs = data.status.stale_seconds * 1000;
    status.textContent = data.status.message;
    status.dataset.feed = data.status.feed ? "1" : "0";
    for (const q of data.quotes) {
      rows[q.symbol] = Object.assign(q, { seenAt: Date.now() - (q.stale ? staleMs : 0) });
      render(q.symbol);
    }
    panel.dataset.loaded = "1";
  }

  window.OMSQuotes = {
    // A push is columns and rows (marketdata/broadcast.py): [symbol, bid, ask, ...].
    apply(msg) {
      const cols = msg.cols;
      for (const values of msg.rows) {
        const row = rows[values[0]];
        if (!row) continue; // only what this page lists
        cols.forEach((name, i) => {
          row[name] = values[i];
        });
        Object.assign(row, { source: "feed", stale: false, seenAt: Date.now() });
        render(values[0]);
      }
      panel.dataset.updates = String(Number(panel.dataset.updates || 0) + 1);
    },
  };

  setInterval(function () {
    const now = Date.now();
    for (const symbol in rows) {
      const r = rows[symbol];
      const stale = r.source !== "reference" && now - r.seenAt > staleMs;
      if (stale !== !!r.stale) {
        r.stale = stale;
        render(symbol);
      }
    }
  }, 1000);
  snapshot();
})();
