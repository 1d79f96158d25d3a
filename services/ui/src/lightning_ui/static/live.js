// Keep the element marked data-live current without a reload: follow its data-stream
// (Server-Sent Events from the UI server) and put each row it sends in place by
// data-event-id. On every `ready` (first connect and each reconnect) the element is
// rendered again from its data-live partial, so nothing that happened while the stream
// was down is missed; rows arriving meanwhile wait and are applied on top, in order.
// Written here; nothing is loaded from a CDN.
"use strict";

function upsert(element, html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const row = template.content.firstElementChild;
  const tbody = element.querySelector("tbody");
  if (!row || !tbody) return;
  const selector = `tr[data-event-id="${CSS.escape(row.dataset.eventId)}"]`;
  const current = tbody.querySelector(selector);
  if (current) {
    current.replaceWith(row);
  } else {
    tbody.querySelector("tr[data-empty]")?.remove();
    tbody.prepend(row);
  }
}

function follow(element) {
  const source = new EventSource(element.dataset.stream);
  let waiting = null; // rows that arrived while the partial loads; null when none loads

  async function rerender() {
    if (waiting) return; // a rendering is already on its way; its rows queue up
    waiting = [];
    try {
      const response = await fetch(element.dataset.live, { headers: { Accept: "text/html" } });
      element.innerHTML = await response.text();
    } catch {
      // The UI server is restarting: keep the last rendering; the next `ready` retries.
    }
    const rows = waiting;
    waiting = null;
    for (const html of rows) upsert(element, html);
  }

  source.addEventListener("ready", rerender);
  source.addEventListener("unavailable", rerender); // the partial says what is wrong
  source.addEventListener("row", (message) => {
    if (waiting) waiting.push(message.data);
    else upsert(element, message.data);
  });
}

for (const element of document.querySelectorAll("[data-live][data-stream]")) {
  follow(element);
}
