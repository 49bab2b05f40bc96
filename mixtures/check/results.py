"""What a check reports (:class:`CheckResult`), and the results' JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One check: ``passed`` is True, False, or None when not applicable."""

    name: str
    passed: bool | None
    evidence: str
    diagnosis: str = ""


def results_as_dict(results: list[CheckResult]) -> dict[str, Any]:
    """JSON-ready form: ``{"passed": bool, "checks": [...]}``."""
    return {
        "passed": all(r.passed is not False for r in results),
        "checks": [asdict(r) for r in results],
    }
