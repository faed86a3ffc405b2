// Labelled form fields whose API errors ({"field": ["message"]}) show under the field they
// concern, announced and tied to it with aria-describedby; anything else shows above the form.

import { h, replaceChildren } from "./dom.js";
import { ApiError, describeError } from "./api.js";

let nextId = 0;

// One labelled control. kind: "input" (with type), "textarea" or "select" (with options).
export function field({ name, label, kind = "input", type = "text", value = "", required = false,
  autocomplete, options = [], hint, rows }) {
  const id = `f${++nextId}-${name}`;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const attributes = {
    id,
    name,
    required,
    autocomplete,
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
  };
  let control;
  if (kind === "textarea") {
    control = h("textarea", { ...attributes, rows: rows || 5 });
    control.value = value;
  } else if (kind === "select") {
    control = h("select", attributes,
      options.map((o) => h("option", { value: o.value, selected: o.value === value }, o.label)));
  } else {
    control = h("input", { ...attributes, type });
    control.value = value;
  }
  const error = h("p", { id: errorId, class: "field-error" });
  const wrapper = h("div", { class: "field" },
    h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    control,
    error);
  return { name, control, error, wrapper };
}

// Wires a form: submit calls action(values); errors land next to their fields. Returns the form.
export function apiForm({ fields, submitLabel, action, extra = [], label }) {
  const formError = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit" }, submitLabel);
  const form = h("form", { novalidate: true, "aria-label": label },
    formError, fields.map((f) => f.wrapper), h("div", { class: "actions" }, submit, extra));

  const clear = () => {
    formError.replaceChildren();
    for (const f of fields) {
      f.error.replaceChildren();
      f.control.removeAttribute("aria-invalid");
    }
  };

  const show = (error) => {
    const body = error instanceof ApiError ? error.body : null;
    const rest = [];
    let firstInvalid = null;
    if (error instanceof ApiError && error.status === 400 && body && typeof body === "object") {
      for (const [key, messages] of Object.entries(body)) {
        const target = fields.find((f) => f.name === key);
        const text = [].concat(messages).join(" ");
        if (target) {
          replaceChildren(target.error, text);
          target.control.setAttribute("aria-invalid", "true");
          firstInvalid = firstInvalid || target.control;
        } else {
          rest.push(text);
        }
      }
    } else {
      rest.push(describeError(error));
    }
    if (rest.length) replaceChildren(formError, rest.join(" "));
    if (firstInvalid) firstInvalid.focus();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    // The browser's own checks for required fields first, shown the same way as the API's.
    const missing = fields.filter((f) => f.control.required && !f.control.value.trim());
    if (missing.length) {
      show(new ApiError(400, Object.fromEntries(missing.map((f) => [f.name, ["This field is required."]])), "required"));
      return;
    }
    const values = Object.fromEntries(fields.map((f) => [f.name, f.control.value]));
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await action(values);
    } catch (error) {
      show(error);
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
  return form;
}
