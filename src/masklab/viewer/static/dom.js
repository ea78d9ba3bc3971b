// Small DOM helpers shared by the pages.

/** Create an element: h("a", {href: "#/x", class: "link"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const enc = encodeURIComponent;

export function hexColor([r, g, b]) {
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

export function parseHex(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** The label map widget: a row per label, its colour (an input on drafts) and a toggle. */
export function labelLegend(labelMap, { editable = false, counts = null, hidden = null,
                                        onToggle = null, onColor = null } = {}) {
  const rows = labelMap.labels.map((label) => {
    const id = String(label.id);
    const color = editable
      ? h("input", {
          type: "color",
          class: "color",
          value: hexColor(label.color),
          title: "colour, saved to the version",
          dataset: { label: id },
          onchange: (e) => onColor && onColor(label, parseHex(e.target.value), e.target),
        })
      : h("span", {
          class: "swatch",
          style: `background:${hexColor(label.color)}`,
          dataset: { label: id },
        });
    const toggle = onToggle
      ? h("input", {
          type: "checkbox",
          class: "toggle",
          checked: !(hidden && hidden.has(label.id)),
          title: "show this label",
          dataset: { label: id },
          onchange: (e) => onToggle(label, e.target.checked),
        })
      : null;
    return h(
      "li",
      { class: "label", dataset: { label: id, role: label.role } },
      toggle,
      color,
      h("span", { class: "names" }, label.names.join(", ")),
      h("span", { class: "muted" }, ` #${label.id}`),
      label.role && label.role !== "class" ? h("span", { class: "muted" }, ` ${label.role}`) : null,
      counts ? h("span", { class: "count" }, String(counts.get(label.id) || 0)) : null,
    );
  });
  return h("ul", { class: "legend" }, rows);
}
