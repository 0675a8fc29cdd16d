// The rule admin shows the parameter fields of the chosen kind only (each field's data-kinds
// names the kinds that use it); without this script every field shows, with its "For:" note.
(function () {
  function apply() {
    const kind = document.getElementById("id_kind");
    if (!kind) return;
    let shown = 0;
    document.querySelectorAll("[data-kinds]").forEach(function (input) {
      const row = input.closest(".form-row") || input.closest("div");
      if (!row) return;
      const on = input.dataset.kinds.split(" ").indexOf(kind.value) >= 0;
      row.hidden = !on;
      row.style.display = on ? "" : "none";
      if (on) shown++;
    });
    let note = document.getElementById("no-parameters");
    const fieldset = document.querySelector("[data-kinds]") && document.querySelector("[data-kinds]").closest("fieldset");
    if (!note && fieldset) {
      note = document.createElement("p");
      note.id = "no-parameters";
      note.className = "help";
      note.textContent = "This kind of rule takes no parameters.";
      fieldset.append(note);
    }
    if (note) note.hidden = shown > 0;
  }
  document.addEventListener("DOMContentLoaded", function () {
    apply();
    const kind = document.getElementById("id_kind");
    if (kind) kind.addEventListener("change", apply);
  });
})();
