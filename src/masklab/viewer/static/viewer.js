// The frame viewer (masks over the image, per source) and the diff view of one frame.
//
// Pixel-segmentation mode paints a source's pixel mask (one RLE per class value, each value a
// label id of the version's label map) and then the annotations in their order (a later one
// covers an earlier one), each in its label's colour; fills use the opacity slider, outlines
// are opaque. Alpha mode paints the chosen alpha mask's values as the opacity of a tint over
// the image (value 255 = the tint alone, 0 = the image alone), scaled by the slider.

import * as api from "./api.js";
import { enc, h, hexColor, labelLegend, parseHex } from "./dom.js";
import { saveColor, setCrumbs } from "./pages.js";
import { Layer, Runs, packColor } from "./rle.js";

const UNLABELED = { id: -1, names: ["(no label)"], color: [160, 160, 160], role: "class" };
const DIFF_COLOR = [255, 0, 64];

/** The label of an annotation: by name in the label map, else by class id. */
function labelOf(ann, byName, byId) {
  for (const name of ann.labels || []) {
    if (byName.has(name)) return byName.get(name);
  }
  if (ann.class_id !== null && ann.class_id !== undefined && byId.has(ann.class_id)) {
    return byId.get(ann.class_id);
  }
  return UNLABELED;
}

function indexLabels(labelMap) {
  const byId = new Map();
  const byName = new Map();
  for (const label of labelMap.labels) {
    byId.set(label.id, label);
    for (const name of label.names) if (!byName.has(name)) byName.set(name, label);
  }
  return { byId, byName };
}

// Layers and view canvases of a closed frame wait here for the next frame of the same size:
// flipping through a version then allocates (and page-faults) no new 4K buffers.
const pool = new Map(); // "h x w" -> [{layer} | {canvas}]
const POOL_PER_SIZE = 6;

function take(kind, hgt, wid, make) {
  const list = pool.get(`${kind} ${hgt}x${wid}`);
  return (list && list.pop()) || make();
}

function give(kind, hgt, wid, item) {
  const key = `${kind} ${hgt}x${wid}`;
  const list = pool.get(key) || [];
  if (list.length < POOL_PER_SIZE) list.push(item);
  pool.set(key, list);
}

/** Fetch and decode an image off the main thread (an ImageBitmap draws without re-decoding). */
async function loadImage(url) {
  if (!url) return null;
  try {
    const res = await fetch(url);
    if (!res.ok) return null;
    return await createImageBitmap(await res.blob());
  } catch {
    return null; // shown as a dark backdrop; masks and readout still work
  }
}

/** One source of a frame: its image, its masks and its annotations, drawn on one canvas. */
class SourceView {
  constructor(src, annotations) {
    this.id = src.id;
    this.masks = src.masks.map((m) => ({
      id: m.id,
      mode: m.mode,
      error: m.error || null,
      values: m.values.map((v) => ({ value: v.value, runs: new Runs(v.rle) })),
    }));
    this.instances = annotations; // {ann, runs, label}
    const sized = [...this.masks.flatMap((m) => m.values), ...annotations][0];
    this.h = src.height ?? (sized ? sized.runs.h : 1);
    this.w = src.width ?? (sized ? sized.runs.w : 1);
    this.canvas = take("canvas", this.h, this.w, () =>
      h("canvas", { class: "view", width: this.w, height: this.h }));
    this.canvas.dataset.source = this.id;
    this.ctx = this.canvas.getContext("2d");
    this.fills = take("layer", this.h, this.w, () => new Layer(this.h, this.w));
    this.fills.dirty = true; // a pooled layer may hold an old frame's paint
    this.lines = null; // outlines, opaque; made on first use
    this.image = null;
    this.opacity = 1;
    this.maskId = { pixel: this.firstMask("pixel"), alpha: this.firstMask("alpha") };
  }

  firstMask(mode) {
    const m = this.masks.find((x) => x.mode === mode);
    return m ? m.id : "";
  }

  mask(mode) {
    return this.masks.find((m) => m.mode === mode && m.id === this.maskId[mode]) || null;
  }

  /** Paint the overlay layers from the runs (no image needed). */
  paintLayers(opts) {
    const { mode, opacity, fill, outline, hidden, byId, tint } = opts;
    const t0 = performance.now();
    const fills = this.fills;
    fills.clear();
    if (this.lines) this.lines.clear();
    this.opacity = opacity;
    const px = fills.pixels;
    if (mode === "alpha") {
      const m = this.mask("alpha");
      if (m) {
        for (const { value, runs } of m.values) {
          if (value > 0) runs.fill(px, packColor(tint[0], tint[1], tint[2], value));
        }
        fills.dirty = m.values.some((v) => v.value > 0);
      }
    } else {
      const m = this.mask("pixel");
      if (m && fill) {
        for (const { value, runs } of m.values) {
          const label = byId.get(value);
          if (!label || label.role === "background" || hidden.has(label.id)) continue;
          runs.fill(px, packColor(label.color[0], label.color[1], label.color[2]));
          fills.dirty = true;
        }
      }
      const shown = this.instances.filter((x) => !hidden.has(x.label.id));
      if (fill) {
        for (const x of shown) {
          const [r, g, b] = x.label.color;
          x.runs.fill(px, packColor(r, g, b));
        }
        fills.dirty ||= shown.length > 0;
      }
      if (outline && shown.length) {
        if (!this.lines) {
          this.lines = take("layer", this.h, this.w, () => new Layer(this.h, this.w));
          this.lines.dirty = true;
          this.lines.clear();
        }
        const lp = this.lines.pixels;
        for (const x of shown) {
          const [r, g, b] = x.label.color;
          x.runs.outline(lp, packColor(r, g, b));
        }
        this.lines.dirty = true;
      }
    }
    const t1 = performance.now();
    if (fills.dirty) fills.commit();
    if (this.lines && this.lines.dirty) this.lines.commit();
    this.lastPaint = { runs_ms: t1 - t0, commit_ms: performance.now() - t1 };
  }

  /** Draw image and layers onto the visible canvas. */
  composite() {
    const t0 = performance.now();
    const ctx = this.ctx;
    ctx.globalAlpha = 1;
    if (this.image) {
      ctx.drawImage(this.image, 0, 0, this.w, this.h);
    } else {
      ctx.fillStyle = "#111";
      ctx.fillRect(0, 0, this.w, this.h);
    }
    this.fills.drawOn(ctx, this.opacity);
    if (this.lines) this.lines.drawOn(ctx, 1);
    this.ctx.getImageData(0, 0, 1, 1); // flush: the pixels are on the canvas now
    if (this.lastPaint) this.lastPaint.draw_ms = performance.now() - t0;
  }

  paint(opts) {
    this.paintLayers(opts);
    this.composite();
  }

  /** Hand the canvas and layers to the next frame of this size. */
  dispose() {
    this.canvas.onmousemove = null;
    this.canvas.remove();
    give("canvas", this.h, this.w, this.canvas);
    give("layer", this.h, this.w, this.fills);
    if (this.lines) give("layer", this.h, this.w, this.lines);
    this.image = null;
  }

  /** What is under pixel (x, y): annotations (topmost first), mask values. */
  probe(x, y) {
    const hits = this.instances.filter((i) => i.runs.has(x, y)).reverse();
    const out = { x, y, instances: hits, values: [] };
    for (const m of this.masks) {
      for (const v of m.values) {
        if (v.runs.has(x, y)) out.values.push({ mask: m.id, mode: m.mode, value: v.value });
      }
    }
    return out;
  }
}

function controlsBar(state, sources, repaint) {
  const modeSel = h(
    "select",
    { id: "mode", onchange: (e) => { state.mode = e.target.value; renderMaskPickers(); repaint(); } },
    h("option", { value: "pixel", selected: state.mode === "pixel" }, "pixel segmentation"),
    h("option", { value: "alpha", selected: state.mode === "alpha" }, "alpha"),
  );
  const pickers = h("span", { class: "pickers" });
  function renderMaskPickers() {
    pickers.replaceChildren(
      ...sources
        .filter((s) => s.masks.some((m) => m.mode === state.mode))
        .map((s) =>
          h(
            "label",
            {},
            ` ${s.id} mask `,
            h(
              "select",
              {
                class: "mask-select",
                dataset: { source: s.id },
                onchange: (e) => { s.maskId[state.mode] = e.target.value; repaint(); },
              },
              state.mode === "pixel" ? h("option", { value: "" }, "none") : null,
              s.masks
                .filter((m) => m.mode === state.mode)
                .map((m) => h("option", { value: m.id, selected: m.id === s.maskId[state.mode] }, m.id)),
            ),
          ),
        ),
    );
  }
  renderMaskPickers();
  const opacity = h("input", {
    type: "range", id: "opacity", min: 0, max: 100, value: Math.round(state.opacity * 100),
    oninput: (e) => { state.opacity = Number(e.target.value) / 100; opacityOut.textContent = `${e.target.value}%`; repaint(); },
  });
  const opacityOut = h("output", { id: "opacity-value" }, `${Math.round(state.opacity * 100)}%`);
  const check = (id, key, text) =>
    h("label", {}, h("input", { type: "checkbox", id, checked: state[key],
      onchange: (e) => { state[key] = e.target.checked; repaint(); } }), ` ${text}`);
  const tint = h("input", { type: "color", id: "tint", value: hexColor(state.tint), title: "alpha tint",
    onchange: (e) => { state.tint = parseHex(e.target.value); repaint(); } });
  return h(
    "div",
    { class: "controls" },
    h("label", {}, "mode ", modeSel),
    pickers,
    check("fill", "fill", "fills"),
    check("outline", "outline", "outlines"),
    h("label", {}, " opacity ", opacity, " ", opacityOut),
    h("label", {}, " tint ", tint),
  );
}

function readoutText(hit, byId) {
  const lines = [`x ${hit.x}, y ${hit.y}`];
  for (const { ann, label } of hit.instances) {
    lines.push(
      `instance ${ann.instance_id ?? "—"}: ${(ann.labels || []).join(", ") || label.names.join(", ")}` +
        ` · class ${ann.class_id ?? "—"} · area ${ann.area ?? "?"} px`,
    );
  }
  for (const v of hit.values) {
    const label = v.mode === "pixel" ? byId.get(v.value) : null;
    lines.push(
      `mask ${v.mask} (${v.mode}): value ${v.value}` + (label ? ` · ${label.names.join(", ")}` : ""),
    );
  }
  if (lines.length === 1) lines.push("nothing here");
  return lines.join("\n");
}

export async function framePage(ctx, ds, ver, fid) {
  const { root, crumbs, started } = ctx;
  setCrumbs(crumbs, [[ds, `#/d/${enc(ds)}`], [ver, `#/v/${enc(ds)}/${enc(ver)}`], [fid, null]]);
  const versionsP = api.versions(ds).catch(() => []);
  const frame = await api.frame(ds, ver, fid);
  const fetched = performance.now();
  const images = frame.sources.map((s) => loadImage(s.image)); // decoded off the main thread
  let labelMap = frame.label_map;
  let { byId, byName } = indexLabels(labelMap);
  const decodedAnns = frame.annotations
    .filter((a) => a.rle)
    .map((ann) => ({ ann, runs: new Runs(ann.rle), label: labelOf(ann, byName, byId) }));
  const sources = frame.sources.map((s) => {
    const mine = decodedAnns.filter(
      (x) =>
        x.ann.source === s.id ||
        ((x.ann.source === null || x.ann.source === undefined) &&
          (s.height === null || x.runs.h === s.height) &&
          (s.width === null || x.runs.w === s.width)),
    );
    return new SourceView(s, mine);
  });
  const decoded = performance.now();
  const state = { mode: "pixel", opacity: 0.5, fill: true, outline: true, hidden: new Set(),
                  tint: [255, 0, 255] };
  const options = () => ({ ...state, byId });
  for (const s of sources) s.paintLayers(options()); // while the images decode
  const layered = performance.now();
  const loaded = await Promise.all(images);
  const imaged = performance.now();
  sources.forEach((s, k) => {
    s.image = loaded[k];
    s.composite();
  });
  const painted = performance.now();
  const repaint = () => {
    const opts = options();
    for (const s of sources) s.paint(opts);
  };
  const versionInfo = (await versionsP).find((v) => v.name === ver) || null;
  const editable = versionInfo ? versionInfo.status === "draft" : false;

  const counts = new Map();
  for (const x of decodedAnns) counts.set(x.label.id, (counts.get(x.label.id) || 0) + 1);
  const status = h("p", { class: "status", role: "status", id: "status" });
  const legendBox = h("div", { class: "legend-box" });
  const renderLegend = () =>
    legendBox.replaceChildren(
      labelLegend(labelMap, {
        editable,
        counts,
        hidden: state.hidden,
        onToggle: (label, shown) => {
          if (shown) state.hidden.delete(label.id);
          else state.hidden.add(label.id);
          repaint();
        },
        onColor: async (label, rgb) => {
          try {
            labelMap = await saveColor(ds, ver, label, rgb);
            ({ byId, byName } = indexLabels(labelMap));
            for (const x of decodedAnns) x.label = labelOf(x.ann, byName, byId);
            status.textContent = `saved the colour of ${label.names.join(", ")}`;
          } catch (err) {
            status.textContent = `colour not saved: ${err.message}`;
          }
          renderLegend();
          repaint();
        },
      }),
    );
  renderLegend();
  const broken = sources.flatMap((s) => s.masks.filter((m) => m.error).map((m) => `${s.id}/${m.id}: ${m.error}`));
  if (broken.length) status.textContent = `masks not shown: ${broken.join("; ")}`;

  const readout = h("pre", { id: "readout", class: "readout" }, "hover over the image");
  for (const s of sources) {
    s.canvas.onmousemove = (e) => {
      const rect = s.canvas.getBoundingClientRect();
      const x = Math.floor(((e.clientX - rect.left) / rect.width) * s.w);
      const y = Math.floor(((e.clientY - rect.top) / rect.height) * s.h);
      const hit = s.probe(x, y);
      readout.textContent = `source ${s.id}\n` + readoutText(hit, byId);
      readout.dataset.instances = hit.instances.map((i) => i.ann.instance_id).join(",");
    };
  }
  const parent = versionInfo && versionInfo.parent;
  root.append(
    h("h1", {}, fid, h("span", { class: "muted" }, ` in ${ds}:${ver}`)),
    h(
      "p",
      { class: "links" },
      parent ? h("a", { href: `#/diff/${enc(ds)}/${enc(parent)}/${enc(ver)}/${enc(fid)}`, id: "diff-link" },
        `diff with ${parent}`) : null,
    ),
    controlsBar(state, sources, repaint),
    h(
      "div",
      { class: "workspace" },
      h(
        "div",
        { class: "sources" },
        sources.map((s) => h("figure", { class: "source" }, s.canvas, h("figcaption", {}, s.id))),
      ),
      h("aside", {}, h("h2", {}, "Labels"), legendBox, status, h("h2", {}, "Under the cursor"), readout),
    ),
  );
  const timing = {
    frame: fid,
    width: sources[0] ? sources[0].w : 0,
    height: sources[0] ? sources[0].h : 0,
    instances: decodedAnns.length,
    fetch_ms: fetched - started,
    decode_ms: decoded - fetched,
    layers_ms: layered - decoded,
    image_wait_ms: imaged - layered,
    draw_ms: painted - imaged,
    paint: sources.map((s) => s.lastPaint),
    total_ms: painted - started,
  };
  window.masklab.lastOpen = timing;
  window.masklab.viewer = {
    state,
    sources,
    repaint,
    dispose: () => sources.forEach((s) => s.dispose()),
  };
  ctx.after = () => {
    requestAnimationFrame(() => {
      timing.shown_ms = performance.now() - started;
    });
  };
}

export async function diffPage({ root, crumbs }, ds, a, b, fid) {
  setCrumbs(crumbs, [[ds, `#/d/${enc(ds)}`], [`${a} ↔ ${b}`, null], [fid, null]]);
  const d = await api.diff(ds, a, b, fid);
  let frame = null;
  for (const ver of [b, a]) {
    try {
      frame = await api.frame(ds, ver, fid);
      break;
    } catch (err) {
      if (err.status !== 404) throw err;
    }
  }
  root.append(
    h("h1", {}, `${fid}: ${a} → ${b}`),
    h("p", { id: "diff-status", class: `diff-${d.status}` }, `frame ${d.status}`),
  );
  const changes = (d.changes || []).map((c) => ({ ...c, runs: c.rle ? new Runs(c.rle) : null }));
  if (frame && frame.sources.length) {
    const src = frame.sources[0];
    const img = await loadImage(src.image);
    const canvas = h("canvas", { class: "view", id: "diff-canvas", width: src.width, height: src.height });
    const c2d = canvas.getContext("2d");
    const layer = new Layer(src.height, src.width);
    const color = packColor(...DIFF_COLOR, 255);
    for (const c of changes) {
      if (c.runs && c.runs.h === src.height && c.runs.w === src.width && c.runs.area > 0) {
        c.runs.fill(layer.pixels, color);
        layer.dirty = true;
      }
    }
    if (layer.dirty) layer.commit();
    if (img) {
      c2d.drawImage(img, 0, 0, src.width, src.height);
      c2d.fillStyle = "rgba(0,0,0,0.35)"; // dim what did not change
      c2d.fillRect(0, 0, src.width, src.height);
    } else {
      c2d.fillStyle = "#111";
      c2d.fillRect(0, 0, src.width, src.height);
    }
    layer.drawOn(c2d, 1);
    root.append(h("figure", { class: "source" }, canvas, h("figcaption", {}, "changed pixels in red")));
  }
  root.append(
    h(
      "table",
      { class: "changes" },
      h("thead", {}, h("tr", {}, ["change", "instance", "labels", "pixels"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        changes.map((c) =>
          h("tr", {}, h("td", {}, c.kind), h("td", {}, String(c.instance_id ?? "—")),
            h("td", {}, (c.labels || []).join(", ")), h("td", { class: "num" }, String(c.pixels ?? ""))),
        ),
      ),
    ),
    h("p", {}, h("a", { href: `#/f/${enc(ds)}/${enc(b)}/${enc(fid)}` }, `open ${fid} in ${b}`)),
  );
}
