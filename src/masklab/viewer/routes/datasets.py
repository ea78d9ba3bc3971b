"""``/api/datasets``: the store's datasets and each one's versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from masklab.errors import NotFoundError
from masklab.viewer.deps import StoreDep, segment
from masklab.viewer.schemas import DatasetOut, VersionOut, label_map_out

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.get("")
def list_datasets(store: StoreDep) -> list[DatasetOut]:
    """All datasets, by name, with their number of versions."""
    return [DatasetOut(name=ds.name, versions=len(ds.versions())) for ds in store.datasets()]


@router.get("/{dataset}/versions")
def list_versions(
    store: StoreDep,
    dataset: Annotated[str, Path(description="Dataset name, percent-encoded.")],
) -> list[VersionOut]:
    """A dataset's versions, oldest first: status, parent, counts and label map."""
    try:
        ds = store.dataset(segment(dataset, "dataset"))
    except NotFoundError as err:
        raise HTTPException(404, str(err.args[0])) from None
    out = []
    for v in ds.versions():
        status = v.status  # re-reads the row: counts and label map are current
        parent = v.parent
        out.append(
            VersionOut(
                name=v.name,
                ref=v.ref,
                status="published" if status == "published" else "draft",
                parent=None if parent is None else parent.name,
                frames=v.frame_count,
                instances=v.instance_count,
                label_map=label_map_out(v.label_map),
                description=v.description,
                created_at=v.created_at,
            )
        )
    return out
