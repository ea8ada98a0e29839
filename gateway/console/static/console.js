// The only script of the console: "select all" on the dead letters page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="delivery_id"]')) {
      box.checked = all.checked;
    }
  });
});
