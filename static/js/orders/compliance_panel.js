// Renders a compliance verdict and its rule results (the shape of /api/compliance/check/ and
// of an order's "compliance") into a container, as text only.
(function () {
  const COLUMNS = ["rule", "severity", "outcome", "message", "value_before", "value_after", "limit", "headroom", "max_passing_quantity"];
  function render(container, compliance, emptyText) {
    if (!compliance) {
      container.innerHTML = "<p>" + OMS.escape(emptyText || "No compliance result.") + "</p>";
      return;
    }
    const verdict = compliance.verdict || "";
    const cls = verdict === "PASS" ? "ok" : verdict === "WARN" ? "warn" : "bad";
    let html = '<p>Verdict: <strong class="' + cls + '" data-testid="compliance-verdict">' + OMS.escape(verdict) + "</strong></p>";
    // Failing rules first (block, then warn): the reason for the verdict is the first row.
    const RANK = { BLOCK: 0, WARN: 1, PASS: 2 };
    const results = (compliance.results || []).slice().sort(function (a, b) {
      return (RANK[a.outcome] ?? 3) - (RANK[b.outcome] ?? 3);
    });
    if (results.length) {
      html += '<table class="grid" data-testid="compliance-results"><thead><tr>' +
        COLUMNS.map(function (c) { return "<th>" + OMS.escape(c.replace(/_/g, " ")) + "</th>"; }).join("") +
        "</tr></thead><tbody>";
      results.forEach(function (r) {
        html += '<tr data-outcome="' + OMS.escape(r.outcome) + '">' +
          COLUMNS.map(function (c) { return "<td>" + OMS.escape(r[c]) + "</td>"; }).join("") + "</tr>";
      });
      html += "</tbody></table>";
    } else {
      html += "<p>No rule applies to this order.</p>";
    }
    container.innerHTML = html;
  }
  window.OMSCompliance = { render: render };
})();
