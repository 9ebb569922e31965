// Building the page: every value from the API goes in as text, never as HTML.

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// h("button", { class: "primary", onclick: fn }, "text", child...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  return append(el, children);
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  return append(el, children);
}

// A labelled input: the label is tied to the field (screen readers, and a bigger tap target).
let fieldCount = 0;
export function field(label, attrs = {}, hint = null) {
  const id = attrs.id || `field-${++fieldCount}`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h("input", { ...attrs, id, "aria-describedby": hintId });
  return { input, node: h("div", { class: "field" }, h("label", { for: id }, label), input,
                          hint ? h("p", { class: "hint", id: hintId }, hint) : null) };
}

// Key facts as a definition list: [[label, value], ...].
export function facts(pairs, attrs = {}) {
  return h("dl", { class: "facts", ...attrs }, pairs.filter(Boolean).flatMap(([label, value]) => [
    h("dt", {}, label), h("dd", {}, value)]));
}
