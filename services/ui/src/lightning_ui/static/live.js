// Re-render the element marked data-live from its partial every half second, so an event
// turns "processed" without a reload. Written here; nothing is loaded from a CDN.
"use strict";

const REFRESH_MS = 500;

async function refresh(element) {
  try {
    const response = await fetch(element.dataset.live, { headers: { Accept: "text/html" } });
    element.innerHTML = await response.text();
  } catch {
    // The UI server is restarting: keep the last rendering and try again.
  }
  setTimeout(() => refresh(element), REFRESH_MS);
}

for (const element of document.querySelectorAll("[data-live]")) {
  setTimeout(() => refresh(element), REFRESH_MS);
}
