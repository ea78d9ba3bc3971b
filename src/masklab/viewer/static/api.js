// The viewer's HTTP API (notes/viewer_api.md): ids travel as URL-encoded path segments.

const enc = encodeURIComponent;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function request(url, options = {}) {
  const res = await fetch(url, options);
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body && body.detail !== undefined) {
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      }
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, detail);
  }
  return res.json();
}

export const datasets = () => request("/api/datasets");

export const versions = (ds) => request(`/api/datasets/${enc(ds)}/versions`);

export function frames(ds, ver, { where = "", offset = 0, limit = 48 } = {}) {
  const q = new URLSearchParams({ offset: String(offset), limit: String(limit) });
  if (where) q.set("where", where);
  return request(`/api/versions/${enc(ds)}/${enc(ver)}/frames?${q}`);
}

export const frame = (ds, ver, fid) =>
  request(`/api/versions/${enc(ds)}/${enc(ver)}/frames/${enc(fid)}`);

export const thumbnailUrl = (ds, ver, fid, size = 256) =>
  `/api/versions/${enc(ds)}/${enc(ver)}/frames/${enc(fid)}/thumbnail?size=${size}`;

export const diff = (ds, a, b, fid) =>
  request(`/api/diff/${enc(ds)}/${enc(a)}/${enc(b)}/frames/${enc(fid)}`);

export const saveColors = (ds, ver, colors) =>
  request(`/api/versions/${enc(ds)}/${enc(ver)}/colors`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ colors }),
  });
