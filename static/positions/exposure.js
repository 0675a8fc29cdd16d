// Exposure charts (Chart.js): long/short by sector, net by top issuer, as % of NAV when the
// accounts have one (the money in the tooltip); long names shortened on the axis, whole in
// the tooltip.
(function () {
  const data = JSON.parse(document.getElementById("exposure-data").textContent);
  if (!window.Chart) return;
  const nav = data.nav ? Number(data.nav) : null;
  const scale = (v) => (nav ? (100 * Number(v)) / nav : Number(v));
  const fmt = window.OMS && OMS.fmt ? OMS.fmt : null;
  const money = (v) => (fmt && fmt.money ? fmt.money(v) : Number(v).toLocaleString());
  const short = (text) => (text.length > 22 ? text.slice(0, 21) + "…" : text);
  const axis = {
    x: { title: { display: true, text: nav ? "% of NAV" : "value" } },
    y: { ticks: { callback(value) { return short(String(this.getLabelForValue(value))); } } },
  };
  function tooltip(raw) {
    return {
      callbacks: {
        title: (items) => items[0].label,
        label(item) {
          const value = raw(item);
          const pct = nav ? ` (${((100 * Number(value)) / nav).toFixed(2)}% of NAV)` : "";
          return `${item.dataset.label}: ${money(value)}${pct}`;
        },
      },
    };
  }
  new Chart(document.getElementById("sector-chart"), {
    type: "bar",
    data: {
      labels: data.sectors.map((r) => r.label),
      datasets: [
        { label: "Long", data: data.sectors.map((r) => scale(r.long)), backgroundColor: "#2f7d4f" },
        { label: "Short", data: data.sectors.map((r) => scale(r.short)), backgroundColor: "#b54040" },
      ],
    },
    options: {
      indexAxis: "y",
      responsive: true,
      scales: { x: { ...axis.x, stacked: true }, y: { ...axis.y, stacked: true } },
      plugins: {
        tooltip: tooltip((item) => data.sectors[item.dataIndex][item.datasetIndex ? "short" : "long"]),
      },
    },
  });
  new Chart(document.getElementById("issuer-chart"), {
    type: "bar",
    data: {
      labels: data.issuers.map((r) => r.label),
      datasets: [{ label: "Net", data: data.issuers.map((r) => scale(r.net)), backgroundColor: "#3a6ea5" }],
    },
    options: {
      indexAxis: "y",
      responsive: true,
      scales: axis,
      plugins: { tooltip: tooltip((item) => data.issuers[item.dataIndex].net) },
    },
  });
})();
