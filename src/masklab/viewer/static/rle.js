// COCO run-length encoding in the page: the compressed-string decoder and run painters.
//
// A COCO RLE lists alternating run lengths (background first) over the mask's pixels in
// column-major order (down each column, then the next column), as pycocotools does. The
// painters never build per-pixel objects: they write each run, a column segment at a time,
// straight into a Uint32Array view of a row-major RGBA layer (stride = width). Consecutive
// columns of a mask touch the same rows, so the strided writes stay in cache.

/** Decode a COCO compressed counts string (pycocotools' rleFrString) into run lengths. */
export function decodeCounts(s) {
  const n = s.length;
  const counts = new Uint32Array(n); // never more runs than characters
  let m = 0;
  let p = 0;
  while (p < n) {
    let x = 0;
    let k = 0;
    let more = 1;
    while (more) {
      if (p >= n) throw new Error(`RLE string ends inside a number at character ${p}`);
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (m > 2) x += counts[m - 2];
    if (x < 0) throw new Error(`RLE string gives a negative run (${x}) at run ${m}`);
    counts[m++] = x;
  }
  return counts.subarray(0, m);
}

/** An RLE from the API ({size: [h, w], counts: "..."}) with its runs decoded once. */
export class Runs {
  constructor(rle) {
    const [h, w] = rle.size;
    this.h = h;
    this.w = w;
    this.counts = decodeCounts(rle.counts);
    let total = 0;
    const ends = new Float64Array(this.counts.length); // end (exclusive) of each run
    for (let i = 0; i < this.counts.length; i++) {
      total += this.counts[i];
      ends[i] = total;
    }
    if (total !== h * w) {
      throw new Error(`RLE runs sum to ${total} but size [${h}, ${w}] needs ${h * w}`);
    }
    this.ends = ends;
    let area = 0;
    for (let i = 1; i < this.counts.length; i += 2) area += this.counts[i];
    this.area = area;
  }

  /** Whether pixel (x, y) is in the mask: a binary search over the run ends. */
  has(x, y) {
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return false;
    const idx = x * this.h + y;
    const ends = this.ends;
    let lo = 0;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] > idx) hi = mid;
      else lo = mid + 1;
    }
    return ends.length > 0 && ends[lo] > idx && (lo & 1) === 1;
  }

  /** Fill the mask's pixels with `color` in a row-major Uint32Array of w*h. */
  fill(buf, color) {
    const counts = this.counts;
    const h = this.h;
    const w = this.w;
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      const n = counts[i];
      if (i & 1) {
        let x = Math.floor(pos / h);
        let y = pos - x * h;
        let left = n;
        while (left > 0) {
          const run = Math.min(left, h - y);
          for (let j = y * w + x, end = j + run * w; j < end; j += w) buf[j] = color;
          left -= run;
          x++;
          y = 0;
        }
      }
      pos += n;
    }
  }

  /** The mask's column segments: [x, y0, y1 (exclusive)] triplets, by x then y. */
  segments() {
    if (this._segments) return this._segments;
    const counts = this.counts;
    const h = this.h;
    const out = [];
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      const n = counts[i];
      if (i & 1) {
        let s = pos;
        const e = pos + n;
        while (s < e) {
          const x = Math.floor(s / h);
          const stop = Math.min(e, (x + 1) * h);
          out.push(x, s - x * h, stop - x * h);
          s = stop;
        }
      }
      pos += n;
    }
    this._segments = Int32Array.from(out);
    return this._segments;
  }

  /**
   * Paint the mask's inner boundary: its pixels with a 4-neighbour outside the mask (or off
   * the frame). Worked out on column segments (each segment's ends, and the rows of it that
   * the neighbouring columns lack), so only boundary pixels are written.
   */
  outline(buf, color) {
    const seg = this.segments();
    const w = this.w;
    const groups = []; // per column: [x, first, end) over the segment triplets
    for (let i = 0; i < seg.length; i += 3) {
      const g = groups[groups.length - 1];
      if (g && g[0] === seg[i]) g[2] = i + 3;
      else groups.push([seg[i], i, i + 3]);
    }
    const paintMissing = (x, y0, y1, other) => {
      // rows y0..y1 of column x that `other` (the neighbour column's segments) lacks
      let cur = y0;
      if (other) {
        for (let k = other[1]; k < other[2] && cur < y1; k += 3) {
          const a = seg[k + 1];
          const b = seg[k + 2];
          if (b <= cur) continue;
          if (a >= y1) break;
          for (let y = cur; y < a; y++) buf[y * w + x] = color;
          cur = Math.max(cur, b);
        }
      }
      for (let y = cur; y < y1; y++) buf[y * w + x] = color;
    };
    for (let gi = 0; gi < groups.length; gi++) {
      const [x, first, end] = groups[gi];
      const prev = gi > 0 && groups[gi - 1][0] === x - 1 ? groups[gi - 1] : null;
      const next = gi + 1 < groups.length && groups[gi + 1][0] === x + 1 ? groups[gi + 1] : null;
      for (let k = first; k < end; k += 3) {
        const y0 = seg[k + 1];
        const y1 = seg[k + 2];
        buf[y0 * w + x] = color;
        buf[(y1 - 1) * w + x] = color;
        paintMissing(x, y0, y1, prev);
        paintMissing(x, y0, y1, next);
      }
    }
  }
}

/** Little-endian RGBA packed for a Uint32Array view of ImageData. */
export function packColor(r, g, b, a = 255) {
  return ((a & 255) << 24) | ((b & 255) << 16) | ((g & 255) << 8) | (r & 255);
}

/** A row-major RGBA layer (w x h) on its own canvas, painted through a Uint32Array. */
export class Layer {
  constructor(h, w) {
    this.h = h;
    this.w = w;
    this.pixels = new Uint32Array(h * w);
    this.canvas = document.createElement("canvas");
    this.canvas.width = w;
    this.canvas.height = h;
    this.ctx = this.canvas.getContext("2d");
    this.dirty = false; // pixels hold paint (clear() must zero them)
  }

  clear() {
    if (this.dirty) this.pixels.fill(0);
    this.dirty = false;
  }

  /** Copy the buffer into the layer's canvas (after painting into `pixels`). */
  commit() {
    const data = new Uint8ClampedArray(this.pixels.buffer, 0, this.h * this.w * 4);
    this.ctx.putImageData(new ImageData(data, this.w, this.h), 0, 0);
  }

  /** Draw the layer over `ctx` at `alpha` (1: as painted). */
  drawOn(ctx, alpha = 1) {
    if (!this.dirty || alpha <= 0) return;
    ctx.save();
    ctx.globalAlpha = alpha;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.canvas, 0, 0);
    ctx.restore();
  }
}
