"""What verify, check, prune and an index rebuild found: a ``Report`` of ``Problem``s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapkeep.progress import Reporter


@dataclass
class Problem:
    key: str  # the repository object concerned, e.g. data/ab/ab12…, index/…, snapshots/…
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class Report:
    kind: str  # "verify", "check", "prune", "prune-plan", "rebuild-index"
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, key: str, message: str, reporter: Reporter | None = None) -> None:
        self.problems.append(Problem(key, message))
        if reporter is not None:
            reporter.log(f"problem: {key}: {message}")

    def note(self, message: str, reporter: Reporter | None = None) -> None:
        self.notes.append(message)
        if reporter is not None:
            reporter.log(message)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok,
                "problems": [{"key": p.key, "message": p.message} for p in self.problems],
                "notes": list(self.notes), "stats": dict(self.stats)}
