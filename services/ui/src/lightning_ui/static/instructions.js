// The instruction form: show only the chosen action's fields, post the form as JSON
// with fetch, and put each validation message next to its field (no reload). An Edit
// button in the list loads that instruction into the same form; saving it replaces the
// version that was loaded (its ETag), so an edit made elsewhere meanwhile is not lost.
// Written here; nothing is loaded from a CDN.
"use strict";

const form = document.getElementById("instruction-form");
const kind = form.elements.action_kind;
const title = form.querySelector("h2");
const submit = form.querySelector("button[type=submit]");
const cancel = form.querySelector("button.cancel");
const saved = form.querySelector(".saved");

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

// Back to creating a new instruction (after a save, or when editing is cancelled).
function stopEditing() {
  delete form.dataset.editing;
  form.reset();
  form.elements.etag.value = "";
  form.elements.enabled.value = "";
  title.textContent = title.dataset.titleNew;
  submit.textContent = submit.dataset.labelNew;
  cancel.hidden = true;
  showErrors({});
  showAction();
}

async function startEditing(id) {
  saved.textContent = "";
  const response = await fetch(`/instructions/${encodeURIComponent(id)}/form`, {
    headers: { Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showErrors({ form: body.error || `failed: ${response.status}` });
    return;
  }
  for (const [name, value] of Object.entries(body.fields)) {
    if (form.elements[name]) form.elements[name].value = value;
  }
  form.elements.etag.value = body.etag;
  form.dataset.editing = id;
  title.textContent = `Edit “${body.fields.name}”`;
  submit.textContent = "Save changes";
  cancel.hidden = false;
  showErrors({});
  showAction();
  form.scrollIntoView({ behavior: "smooth", block: "start" });
  form.elements.name.focus();
}

kind.addEventListener("change", showAction);
cancel.addEventListener("click", stopEditing);
showAction();

// The list is re-rendered by polling, so its Edit buttons are handled here, not bound.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-edit]");
  if (button) startEditing(button.dataset.edit);
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  saved.textContent = "";
  const editing = form.dataset.editing;
  const url = editing ? `/instructions/${encodeURIComponent(editing)}` : form.action;
  submit.disabled = true;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(Object.fromEntries(new FormData(form))),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      stopEditing();
      saved.textContent = editing ? "Saved." : "Created.";
      await window.lightning.refresh(document.getElementById("instructions"));
    } else {
      showErrors(body.errors || { form: body.detail || `failed: ${response.status}` });
      // Changed elsewhere: show the list as it is stored now, next to the refused edit.
      if (response.status === 412) window.lightning.refresh(document.getElementById("instructions"));
    }
  } catch (error) {
    showErrors({ form: `the UI did not answer: ${error}` });
  } finally {
    submit.disabled = false;
  }
});
