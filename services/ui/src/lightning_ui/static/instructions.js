// The instruction form: show only the chosen action's fields, post the form as JSON
// with fetch, and put each validation message next to its field (no reload).
// Written here; nothing is loaded from a CDN.
"use strict";

const form = document.getElementById("instruction-form");
const kind = form.elements.action_kind;

function showAction() {
  for (const fieldset of form.querySelectorAll("fieldset[data-action]")) {
    fieldset.hidden = fieldset.dataset.action !== kind.value;
  }
}

function showErrors(errors) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    const message = errors[slot.dataset.errorFor] || "";
    slot.textContent = message;
    const input = form.elements[slot.dataset.errorFor];
    if (input instanceof Element) input.toggleAttribute("aria-invalid", Boolean(message));
  }
}

kind.addEventListener("change", showAction);
showAction();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const saved = form.querySelector(".saved");
  saved.textContent = "";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(Object.fromEntries(new FormData(form))),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      showErrors({});
      form.reset();
      showAction();
      saved.textContent = "Created.";
      await window.lightning.refresh(document.getElementById("instructions"));
    } else {
      showErrors(body.errors || { form: `failed: ${response.status}` });
    }
  } catch (error) {
    showErrors({ form: `the UI did not answer: ${error}` });
  } finally {
    button.disabled = false;
  }
});
