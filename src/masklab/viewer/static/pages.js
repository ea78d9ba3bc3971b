// The list pages: datasets -> versions -> a grid of frame thumbnails with a query box.

import * as api from "./api.js";
import { enc, h, labelLegend } from "./dom.js";

const PAGE_SIZE = 48;

export function setCrumbs(crumbs, items) {
  const out = [h("a", { href: "#/datasets" }, "datasets")];
  for (const [text, href] of items) {
    out.push(h("span", { class: "sep" }, " / "));
    out.push(href ? h("a", { href }, text) : h("span", {}, text));
  }
  crumbs.replaceChildren(...out);
}

export async function datasetsPage({ root, crumbs }) {
  const list = await api.datasets();
  setCrumbs(crumbs, []);
  root.append(
    h("h1", {}, "Datasets"),
    list.length
      ? h(
          "ul",
          { class: "datasets" },
          list.map((d) =>
            h(
              "li",
              { dataset: { name: d.name } },
              h("a", { href: `#/d/${enc(d.name)}` }, d.name),
              h("span", { class: "muted" }, ` ${d.versions} version${d.versions === 1 ? "" : "s"}`),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No datasets in this store yet."),
  );
}

/** Save one label colour; returns the new label map (or throws ApiError). */
export async function saveColor(ds, ver, label, rgb) {
  return api.saveColors(ds, ver, { [String(label.id)]: rgb });
}

export async function versionsPage({ root, crumbs }, ds) {
  const list = await api.versions(ds);
  setCrumbs(crumbs, [[ds, null]]);
  const status = h("p", { class: "status", role: "status" });
  const rows = list.map((v) => {
    const legendBox = h("div", {});
    const renderLegend = (labelMap) =>
      legendBox.replaceChildren(
        labelLegend(labelMap, {
          editable: v.status === "draft",
          onColor: async (label, rgb, input) => {
            try {
              v.label_map = await saveColor(ds, v.name, label, rgb);
              status.textContent = `saved the colour of ${label.names.join(", ")} in ${v.ref}`;
              renderLegend(v.label_map);
            } catch (err) {
              status.textContent = `colour not saved: ${err.message}`;
              renderLegend(v.label_map);
            }
          },
        }),
      );
    renderLegend(v.label_map);
    return h(
      "tr",
      { dataset: { version: v.name } },
      h("td", {}, h("a", { href: `#/v/${enc(ds)}/${enc(v.name)}` }, v.name)),
      h("td", { class: `st-${v.status}` }, v.status),
      h("td", {}, v.parent ?? "—"),
      h("td", { class: "num" }, String(v.frames)),
      h("td", { class: "num" }, String(v.instances)),
      h("td", {}, legendBox),
    );
  });
  root.append(
    h("h1", {}, `Versions of ${ds}`),
    h(
      "table",
      { class: "versions" },
      h(
        "thead",
        {},
        h("tr", {}, ["version", "status", "parent", "frames", "instances", "label map"].map(
          (t) => h("th", {}, t),
        )),
      ),
      h("tbody", {}, rows),
    ),
    status,
  );
}

export async function framesPage({ root, crumbs }, ds, ver, params) {
  const where = params.get("where") || "";
  const page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
  setCrumbs(crumbs, [[ds, `#/d/${enc(ds)}`], [ver, null]]);
  const input = h("input", {
    type: "search",
    id: "where",
    value: where,
    placeholder: "label=cat and area>=100",
    size: 48,
  });
  const go = (w, p) => {
    const q = new URLSearchParams();
    if (w) q.set("where", w);
    if (p) q.set("page", String(p));
    const qs = q.toString();
    location.hash = `#/v/${enc(ds)}/${enc(ver)}${qs ? "?" + qs : ""}`;
  };
  const form = h(
    "form",
    { class: "query", onsubmit: (e) => { e.preventDefault(); go(input.value.trim(), 0); } },
    input,
    h("button", { type: "submit" }, "Filter"),
  );
  root.append(h("h1", {}, `${ds}:${ver}`), form);
  let result;
  try {
    result = await api.frames(ds, ver, { where, offset: page * PAGE_SIZE, limit: PAGE_SIZE });
  } catch (err) {
    if (err.status !== 400) throw err;
    root.append(h("p", { class: "error", id: "query-error" }, err.message));
    return;
  }
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
  const cards = result.frames.map((f) =>
    h(
      "a",
      { class: "card", href: `#/f/${enc(ds)}/${enc(ver)}/${enc(f.id)}`, dataset: { frame: f.id } },
      h("img", { src: api.thumbnailUrl(ds, ver, f.id), loading: "lazy", alt: f.id }),
      h("span", { class: "caption" }, f.id),
      h("span", { class: "muted" }, `${f.width ?? "?"}×${f.height ?? "?"} · ${f.instances} inst`),
    ),
  );
  root.append(
    h("p", { class: "muted", id: "total" }, `${result.total} frame${result.total === 1 ? "" : "s"}`),
    h("div", { class: "grid" }, cards),
    h(
      "nav",
      { class: "pager" },
      h("button", { disabled: page <= 0, onclick: () => go(where, page - 1) }, "‹ prev"),
      h("span", {}, ` page ${page + 1} of ${pages} `),
      h("button", { disabled: page + 1 >= pages, onclick: () => go(where, page + 1) }, "next ›"),
    ),
  );
}
