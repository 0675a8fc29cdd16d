// Basket / rebalance upload: drag and drop or choose a CSV, upload with progress, preview
// every line's result, then confirm the same file (the server checks it is the one previewed).
(function () {
  const zone = document.getElementById("drop-zone");
  if (!zone) return;
  const input = document.getElementById("basket-file");
  const progress = document.getElementById("upload-progress");
  const errorBox = document.getElementById("upload-error");
  const previewButton = document.getElementById("preview-button");
  const confirmButton = document.getElementById("confirm-button");
  let file = null;
  let previewed = null;

  function kind() { return document.querySelector('input[name="kind"]:checked').value; }
  function url() { return kind() === "rebalance" ? "/api/baskets/rebalance/" : "/api/baskets/"; }
  function reset() {
    previewed = null;
    confirmButton.disabled = true;
    document.getElementById("preview").hidden = true;
    document.getElementById("basket-result").hidden = true;
    errorBox.textContent = "";
  }
  function choose(f) {
    file = f || null;
    document.getElementById("file-name").textContent = file ? file.name + " (" + file.size.toLocaleString() + " bytes)" : "";
    previewButton.disabled = !file;
    reset();
    if (file) upload(false);
  }
  document.querySelectorAll('input[name="kind"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      document.querySelectorAll("[data-help]").forEach(function (el) { el.hidden = el.dataset.help !== kind(); });
      reset();
    });
  });
  input.addEventListener("change", function () { choose(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.style.borderColor = "var(--accent)"; });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.style.borderColor = ""; });
  });
  zone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  previewButton.addEventListener("click", function () { if (file) upload(false); });
  confirmButton.addEventListener("click", function () { if (file && previewed) upload(true); });

  function upload(confirm) {
    const data = new FormData();
    data.append("file", file);
    data.append("confirm", confirm ? "true" : "false");
    data.append("name", document.getElementById("basket-name").value);
    if (confirm) data.append("expected_sha256", previewed.sha256);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url());
    xhr.setRequestHeader("X-CSRFToken", OMS.cookie("csrftoken"));
    xhr.setRequestHeader("Accept", "application/json");
    progress.hidden = false;
    progress.value = 0;
    previewButton.disabled = confirmButton.disabled = true;
    errorBox.textContent = "";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", function () {
      progress.value = 100;
      previewButton.disabled = false;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status >= 400 || !body) {
        errorBox.textContent = (body && body.error && body.error.message) || ("Upload failed (" + xhr.status + ").");
        confirmButton.disabled = !previewed;
        return;
      }
      if (confirm) showResult(body); else showPreview(body);
    });
    xhr.addEventListener("error", function () {
      previewButton.disabled = false;
      errorBox.textContent = "The upload did not reach the server; try again.";
    });
    xhr.send(data);
  }
  function cell(v) { return "<td>" + OMS.escape(v) + "</td>"; }
  function showPreview(body) {
    previewed = body;
    document.getElementById("preview").hidden = false;
    document.getElementById("preview-summary").textContent =
      body.line_count + " lines: " + body.valid_count + " orders to create, " + body.error_count + " errors.";
    const rows = [];
    body.lines.forEach(function (line) {
      const content = Object.entries(line.data).map(function (e) { return e[1]; }).join(", ");
      if (line.valid) {
        rows.push('<tr data-line="' + line.line + '" class="ok">' + cell(line.line) + cell(content) + cell("OK") + cell("") + cell("") + "</tr>");
      }
      line.errors.forEach(function (err) {
        rows.push('<tr data-line="' + line.line + '" class="bad">' + cell(line.line) + cell(content) + cell("Error") + cell(err.column) + cell(err.reason) + "</tr>");
      });
    });
    document.querySelector("#preview-table tbody").innerHTML = rows.join("");
    const rebalance = document.getElementById("rebalance-orders");
    rebalance.hidden = !body.orders;
    if (body.orders) {
      rebalance.querySelector("tbody").innerHTML = body.orders.map(function (o) {
        const d = o.data;
        const result = o.errors.length ? o.errors.map(function (e) { return e.column + ": " + e.reason; }).join("; ") : (d.skipped || "OK");
        return '<tr class="' + (o.errors.length ? "bad" : "ok") + '">' + cell(o.line) + cell(d.account) + cell(d.symbol) + cell(d.target_weight_pct) +
          cell(d.current_quantity) + cell(d.target_quantity) + cell(d.side || "") + cell(d.quantity || "") + cell(result) + "</tr>";
      }).join("");
    }
    confirmButton.disabled = body.valid_count === 0;
  }
  function showResult(body) {
    const box = document.getElementById("basket-result");
    box.hidden = false;
    box.innerHTML = '<p data-testid="basket-created">Basket ' + OMS.escape(body.basket.id) + " (" + OMS.escape(body.basket.name) + ") created with " +
      OMS.escape(body.order_ids.length) + ' orders. <a href="/orders/mine/">See them in My orders</a>.</p>';
    previewed = null;
    confirmButton.disabled = true;
  }
})();
