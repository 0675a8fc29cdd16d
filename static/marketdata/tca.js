// The TCA page: figures from GET /api/tca/ (the same as the API's), drawn with Chart.js.
(function () {
  const queryNode = document.getElementById("tca-query");
  if (!queryNode) return;
  const query = JSON.parse(queryNode.textContent);
  const num = (v) => (v === null || v === undefined ? null : Number(v));
  const fmt = (v) => (v === null || v === undefined ? "—" : String(v));
  const charts = {};

  function draw(id, config) {
    if (!window.Chart) return;
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function summaryTable(data) {
    const body = document.getElementById("tca-summary-body");
    body.innerHTML = "";
    if (!data.summary.length) {
      body.innerHTML = '<tr><td colspan="10">No routed orders in this range.</td></tr>';
      return;
    }
    for (const row of data.summary) {
      const tr = document.createElement("tr");
      const cells = [row[data.by], row.orders, row.filled, row.fill_rate, row.shortfall_arrival_bps,
        row.shortfall_vwap_bps, row.shortfall_close_bps, row.median_first_fill_seconds,
        row.reject_rate, row.cancel_rate];
      cells.forEach((value, i) => {
        const td = document.createElement("td");
        if (i) td.className = "num";
        td.textContent = fmt(value);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
  }

  async function fills(blockId) {
    const response = await fetch(`/api/tca/blocks/${blockId}/fills/`, { credentials: "same-origin" });
    if (!response.ok) return;
    const t = await response.json();
    draw("tca-fills-chart", {
      type: "line",
      data: {
        datasets: [
          { label: `${t.symbol} market (minute close)`, data: t.market.map((b) => ({ x: b.at, y: num(b.close) })), borderColor: "#3a6ea5", pointRadius: 0 },
          { label: "Our fills", type: "scatter", data: t.fills.map((f) => ({ x: f.at, y: num(f.price) })), backgroundColor: "#b54040" },
        ],
      },
      options: { responsive: true, parsing: false, scales: { x: { type: "category", labels: [...t.market.map((b) => b.at), ...t.fills.map((f) => f.at)].sort() } } },
    });
  }

  async function load() {
    const response = await fetch(`/api/tca/?${query}`, { credentials: "same-origin" });
    const data = await response.json();
    document.body.dataset.tcaLoaded = "1";
    summaryTable(data);
    const brokerQuery = new URLSearchParams(query);
    brokerQuery.set("by", "broker");
    const brokerResponse = await fetch(`/api/tca/?${brokerQuery}`, { credentials: "same-origin" });
    const byBroker = brokerResponse.ok ? await brokerResponse.json() : data;
    draw("tca-broker-chart", {
      type: "bar",
      data: {
        labels: byBroker.summary.map((r) => r.broker),
        datasets: [
          { label: "vs arrival", data: byBroker.summary.map((r) => num(r.shortfall_arrival_bps)), backgroundColor: "#3a6ea5" },
          { label: "vs interval VWAP", data: byBroker.summary.map((r) => num(r.shortfall_vwap_bps)), backgroundColor: "#2f7d4f" },
          { label: "vs close", data: byBroker.summary.map((r) => num(r.shortfall_close_bps)), backgroundColor: "#b58b40" },
        ],
      },
      options: { responsive: true },
    });
    draw("tca-dist-chart", {
      type: "bar",
      data: {
        labels: data.distribution.map((d) => `${d.from_bps}…${d.to_bps}`),
        datasets: [{ label: "orders", data: data.distribution.map((d) => d.orders), backgroundColor: "#6a4fa5" }],
      },
      options: { responsive: true },
    });
    const select = document.getElementById("tca-block");
    const blocks = [...new Set(data.orders.map((o) => o.block))];
    select.innerHTML = blocks.map((b) => `<option value="${b}">block ${b}</option>`).join("");
    select.onchange = () => fills(select.value);
    if (blocks.length) await fills(blocks[0]);
    document.body.dataset.tcaCharts = "1";
  }
  load();
})();
