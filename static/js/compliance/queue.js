// The override queue: the header box selects every block on this page the user may override.
(function () {
  const all = document.querySelector("[data-select-all]");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll("input[name=order_ids]").forEach(function (box) { box.checked = all.checked; });
  });
})();
