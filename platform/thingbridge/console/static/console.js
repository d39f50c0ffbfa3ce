// Thingbridge console: refresh an element marked data-refresh="<seconds>" in place by loading
// its page again (while the checkbox named by data-toggle is ticked and the tab is visible).
"use strict";
document.querySelectorAll("[data-refresh]").forEach((element) => {
  const toggle = element.dataset.toggle && document.getElementById(element.dataset.toggle);
  const every = Number(element.dataset.refresh) * 1000;
  setInterval(async () => {
    if ((toggle && !toggle.checked) || document.hidden) return;
    const response = await fetch(window.location.href, {credentials: "same-origin"});
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById(element.id);
    if (fresh) element.innerHTML = fresh.innerHTML;
  }, every);
});
