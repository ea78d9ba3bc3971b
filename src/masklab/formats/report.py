"""ConversionReport: what a read, write or conversion kept, lost and could not read.

Every reader and writer fills one. Nothing is dropped silently: a record that cannot be
read is a :class:`Problem` (file, record, message); something the target format cannot
hold is a :class:`Loss` (sample, instance, what was lost, the IoU kept where pixels
changed); colours not in the label map are counted per colour with their pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConversionReport", "Loss", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A record that could not be read or written as it is (reported, then skipped)."""

    path: str
    record: str | int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "record": self.record, "message": self.message}


@dataclass(frozen=True, slots=True)
class Loss:
    """Something the target could not hold: holes, parts, overlap, crowd, a class, ..."""

    sample: str
    instance: int | None
    what: str
    detail: str = ""
    iou: float | None = None  # IoU of the written mask with the original, when known

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample": self.sample,
            "instance": self.instance,
            "what": self.what,
            "detail": self.detail,
            "iou": self.iou,
        }


@dataclass
class ConversionReport:
    """Counts, problems, losses and unknown colours of one read, write or conversion."""

    source: str | None = None
    target: str | None = None
    samples: int = 0
    instances: int = 0
    exact: int = 0  # instances written pixel-exact
    problems: list[Problem] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    unknown_colors: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    clipped: int = 0  # coordinates clipped to the image

    def problem(self, path: object, record: object, message: object) -> None:
        """Record a problem with a file and record."""
        rec = record if isinstance(record, (str, int)) or record is None else str(record)
        self.problems.append(Problem(str(path), rec, str(message)))

    def loss(
        self,
        sample: object,
        instance: int | None,
        what: str,
        detail: str = "",
        iou: float | None = None,
    ) -> None:
        """Record something the target could not hold."""
        self.losses.append(Loss(str(sample), instance, what, detail, iou))

    def merge(self, other: ConversionReport) -> None:
        """Add another report's entries (a reader's into a conversion's)."""
        self.problems += other.problems
        self.losses += other.losses
        self.unknown_colors.update(other.unknown_colors)
        self.clipped += other.clipped

    @property
    def ok(self) -> bool:
        """No problems and no losses."""
        return not self.problems and not self.losses and not self.unknown_colors

    def loss_counts(self) -> dict[str, int]:
        """How many losses of each kind."""
        return dict(Counter(loss.what for loss in self.losses))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``--report FILE`` writes)."""
        return {
            "source": self.source,
            "target": self.target,
            "samples": self.samples,
            "instances": self.instances,
            "exact": self.exact,
            "clipped": self.clipped,
            "loss_counts": self.loss_counts(),
            "unknown_colors": [
                {"color": list(c), "pixels": n} for c, n in self.unknown_colors.most_common()
            ],
            "problems": [p.to_dict() for p in self.problems],
            "losses": [loss.to_dict() for loss in self.losses],
        }
