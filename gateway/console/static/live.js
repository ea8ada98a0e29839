// The search's live view: while "auto-refresh" is ticked, the results are fetched again every
// few seconds and swapped in place (no page reload). The page's own URL keeps ?live=1.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.getElementById("live-toggle");
  const results = document.getElementById("results");
  const stamp = document.getElementById("live-updated");
  if (!toggle || !results) return;
  const everyMs = 5000;
  let timer = null;

  async function refresh() {
    try {
      const answer = await fetch(results.dataset.liveSrc, {
        credentials: "same-origin", headers: { "Accept": "text/html" }, redirect: "manual",
      });
      if (answer.ok) {
        results.innerHTML = await answer.text();
        const now = new Date().toLocaleTimeString(document.documentElement.lang);
        stamp.textContent = results.dataset.liveLabel.replace("{at}", now);
      }
    } catch (error) {
      stamp.textContent = String(error);
    }
  }

  function setLive(on) {
    clearInterval(timer);
    timer = on ? setInterval(refresh, everyMs) : null;
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("live", "1"); else url.searchParams.delete("live");
    window.history.replaceState(null, "", url);
  }

  toggle.addEventListener("change", () => setLive(toggle.checked));
  if (toggle.checked) setLive(true);
});
