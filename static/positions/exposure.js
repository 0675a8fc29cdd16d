// Exposure charts (Chart.js): long/short by sector, net by top issuer.
(function () {
  const data = JSON.parse(document.getElementById("exposure-data").textContent);
  const num = (v) => Number(v);
  if (!window.Chart) return;
  new Chart(document.getElementById("sector-chart"), {
    type: "bar",
    data: {
      labels: data.sectors.map((r) => r.label),
      datasets: [
        { label: "Long", data: data.sectors.map((r) => num(r.long)), backgroundColor: "#2f7d4f" },
        { label: "Short", data: data.sectors.map((r) => num(r.short)), backgroundColor: "#b54040" },
      ],
    },
    options: { indexAxis: "y", responsive: true, scales: { x: { stacked: true }, y: { stacked: true } } },
  });
  new Chart(document.getElementById("issuer-chart"), {
    type: "bar",
    data: {
      labels: data.issuers.map((r) => r.label),
      datasets: [{ label: "Net", data: data.issuers.map((r) => num(r.net)), backgroundColor: "#3a6ea5" }],
    },
    options: { indexAxis: "y", responsive: true },
  });
})();
