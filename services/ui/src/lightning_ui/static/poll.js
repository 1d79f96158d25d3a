// Keep each element marked data-poll current without a reload: fetch its partial (the
// data-poll URL) every data-every ms and swap it in when it changed. Buttons marked
// data-post (anywhere) POST to the UI, then refresh the data-poll element around them;
// a refused request is shown in the flash line at the top of the page.
// Written here; nothing is loaded from a CDN.
"use strict";

const loading = new WeakMap(); // element -> the refresh under way, so none overlap

function refresh(element) {
  if (loading.has(element)) return loading.get(element);
  const done = (async () => {
    try {
      const response = await fetch(element.dataset.poll, { headers: { Accept: "text/html" } });
      const html = await response.text();
      if (html !== element.dataset.rendered) {
        element.innerHTML = html;
        element.dataset.rendered = html;
      }
    } catch {
      // The UI server is restarting: keep the last rendering; the next tick retries.
    } finally {
      loading.delete(element);
    }
  })();
  loading.set(element, done);
  return done;
}

function flash(message) {
  let line = document.getElementById("flash");
  if (!line) {
    line = document.createElement("p");
    line.id = "flash";
    line.className = "error";
    line.setAttribute("role", "alert");
    document.querySelector("main").prepend(line);
  }
  line.textContent = message;
  line.hidden = !message;
}

async function post(button) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.post, { method: "POST" });
    const body = await response.json().catch(() => ({}));
    flash(response.ok ? "" : body.error || body.detail || `failed: ${response.status}`);
  } catch (error) {
    flash(`the UI did not answer: ${error}`);
  }
  const live = button.closest("[data-poll]");
  button.disabled = false;
  if (live) await refresh(live);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-post]");
  if (button) post(button);
});

for (const element of document.querySelectorAll("[data-poll]")) {
  const every = Number(element.dataset.every || 1000);
  setInterval(() => refresh(element), every);
}

window.lightning = { refresh, flash };
