// masklab viewer: hash routing between the pages (no build step, plain ES modules).
//
// #/datasets, #/d/{ds}, #/v/{ds}/{ver}?where=..&page=.., #/f/{ds}/{ver}/{fid},
// #/diff/{ds}/{a}/{b}/{fid}. Each page renders into #app and sets #app[data-state] to
// "loading", then "ready" (or "error"), which the browser tests wait on; each finished render
// also counts up window.masklab.rendered.

import { h } from "./dom.js";
import { datasetsPage, framesPage, versionsPage } from "./pages.js";
import { diffPage, framePage } from "./viewer.js";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
window.masklab = window.masklab || {};
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter((s) => s.length).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function route({ parts, params }) {
  const [kind, ...args] = parts;
  if (!kind || kind === "datasets") return [datasetsPage, []];
  if (kind === "d" && args.length === 1) return [versionsPage, args];
  if (kind === "v" && args.length === 2) return [framesPage, [...args, params]];
  if (kind === "f" && args.length === 3) return [framePage, args];
  if (kind === "diff" && args.length === 4) return [diffPage, args];
  return [null, []];
}

async function render() {
  const gen = ++generation;
  const started = performance.now();
  const parsed = parseHash();
  const [page, args] = route(parsed);
  if (window.masklab.viewer && window.masklab.viewer.dispose) window.masklab.viewer.dispose();
  window.masklab.viewer = null;
  app.dataset.state = "loading";
  const root = h("div", { class: "page" });
  try {
    if (!page) throw new Error(`no page at ${location.hash}; start at #/datasets`);
    const ctx = { root, crumbs, started, stale: () => gen !== generation };
    await page(ctx, ...args);
    if (gen !== generation) return;
    app.replaceChildren(root);
    app.dataset.state = "ready";
    window.masklab.rendered = (window.masklab.rendered || 0) + 1;
    if (ctx.after) ctx.after();
  } catch (err) {
    if (gen !== generation) return;
    app.replaceChildren(h("div", { class: "page" }, h("p", { class: "error" }, err.message)));
    app.dataset.state = "error";
    window.masklab.rendered = (window.masklab.rendered || 0) + 1;
  }
}

window.addEventListener("hashchange", render);
if (!location.hash) history.replaceState(null, "", "#/datasets");
render();
