// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
// An error of the watchlist editor that names a rule and a column: clicking it puts the
// cursor there in the rules box.
document.querySelectorAll("ul.errors li[data-line]").forEach((li) => {
  const box = document.querySelector(`textarea[name="${li.dataset.box}"]`);
  if (!box || !li.dataset.line) return;
  li.style.cursor = "pointer";
  li.addEventListener("click", () => {
    const lines = box.value.split("\n").filter((l) => l.trim() !== "");
    const line = lines[Number(li.dataset.line) - 1] ?? "";
    const start = box.value.indexOf(line) + Math.max(0, Number(li.dataset.column || 1) - 1);
    box.focus();
    box.setSelectionRange(start, start + 1);
  });
});
