// Builds DOM from data without ever parsing it as HTML: text goes in as text nodes, so a note
// titled "<img onerror=…>" shows those characters and runs nothing.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function h(tag, attributes, ...children) {
  return build(document.createElement(tag), attributes, children);
}

export function svg(tag, attributes, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attributes, children);
}

export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  build(parent, {}, children);
  return parent;
}

export function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

let toastTimer = 0;

// A short message in the polite live region, optionally with one action (e.g. Undo).
export function toast(message, action) {
  const box = document.getElementById("toast");
  clearTimeout(toastTimer);
  const parts = [h("span", {}, message)];
  if (action) {
    parts.push(
      h("button", {
        type: "button",
        onclick: () => {
          box.replaceChildren();
          action.run();
        },
      }, action.label),
    );
  }
  replaceChildren(box, parts);
  toastTimer = setTimeout(() => box.replaceChildren(), action ? 15000 : 5000);
}
