"""Pass/fail of size statistics against a specification: ``--spec "D50=400..450,CV<15"``.

Grammar: criteria separated by commas; each is ``[TABLE:]KEY OP VALUE`` with

* ``TABLE``: ``Q0`` (number-weighted, the default) or ``Q3`` (volume-weighted);
* ``KEY``: ``mean``, ``D10``, ``D50``, ``D90``, ``mode``, ``std``, ``CV`` (percent), ``span``, ``D32``,
  ``D43`` or ``N`` (particles in the statistics), case-insensitive;
* ``OP VALUE``: ``=LO..HI`` (inclusive range), ``<X``, ``<=X``, ``>X``, ``>=X``.

Sizes are in the result's unit (um when calibrated). A size criterion on an uncalibrated result (px) is
not evaluated (``n/a``): a um limit against px would give a verdict without meaning. The overall verdict
is ``fail`` if any criterion fails, ``pass`` if all pass, ``n/a`` otherwise.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from srpsa.errors import InputError

KEYS = {"mean": "mean", "d10": "d10", "d50": "d50", "d90": "d90", "mode": "mode", "std": "std", "cv": "cv",
        "span": "span", "d32": "d32", "d43": "d43", "n": "n"}
#: Keys that are sizes (compared only in um); the others have no unit.
SIZE_KEYS = frozenset({"mean", "d10", "d50", "d90", "mode", "std", "d32", "d43"})
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ITEM = re.compile(rf"^\s*(?:(q0|q3)\s*:\s*)?([a-z0-9]+)\s*(?:=\s*({_NUM})\s*\.\.\s*({_NUM})|(<=|>=|<|>)\s*({_NUM}))\s*$", re.I)


@dataclass(frozen=True)
class Criterion:
    table: str  # "Q0" | "Q3"
    key: str  # statistics key (lower case)
    op: str  # "range" | "<" | "<=" | ">" | ">="
    lo: float
    hi: float  # for one-sided ops the limit is in lo (<, <= use hi)

    @property
    def text(self) -> str:
        name = {"n": "N", "cv": "CV"}.get(self.key, self.key.upper() if self.key[0] == "d" else self.key)
        prefix = "" if self.table == "Q0" else "Q3:"
        if self.op == "range":
            return f"{prefix}{name}={self.lo:g}..{self.hi:g}"
        return f"{prefix}{name}{self.op}{(self.hi if self.op.startswith('<') else self.lo):g}"

    def check(self, value: float) -> bool:
        if self.op == "range":
            return self.lo <= value <= self.hi
        limit = self.hi if self.op.startswith("<") else self.lo
        return {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[self.op]


def parse_spec(text: str | None, flag: str = "--spec") -> list[Criterion]:
    """The criteria of a specification string; one-line :class:`InputError` naming ``flag`` on a bad item."""
    if not text or not text.strip():
        return []
    out = []
    for item in text.split(","):
        m = _ITEM.match(item)
        if not m:
            raise InputError(f"{flag}: cannot read '{item.strip()}' (expected e.g. \"D50=400..450,CV<15\", Q3:D90<600, N>=500)")
        table, key = (m.group(1) or "Q0").upper(), m.group(2).lower()
        if key not in KEYS:
            raise InputError(f"{flag}: unknown statistic '{m.group(2)}' in '{item.strip()}'; use one of mean, D10, D50, D90, mode, std, CV, span, D32, D43, N")
        if m.group(3) is not None:
            lo, hi = float(m.group(3)), float(m.group(4))
            if not lo <= hi:
                raise InputError(f"{flag}: range {item.strip()} has its low end above its high end")
            out.append(Criterion(table, key, "range", lo, hi))
        else:
            op, value = m.group(5), float(m.group(6))
            out.append(Criterion(table, key, op, value if op.startswith(">") else -math.inf, value if op.startswith("<") else math.inf))
    return out


def evaluate_spec(criteria: list[Criterion], statistics: dict, unit: str) -> dict:
    """``statistics`` as in summary.json (``{"Q0": {...}, "Q3": {...}}``). Returns the JSON-able verdict:
    ``{"spec": text, "verdict": pass|fail|n/a, "criteria": [{criterion, value, verdict, note}]}``."""
    rows = []
    for c in criteria:
        stats = statistics.get(c.table) or {}
        value = stats.get(KEYS[c.key])
        note = ""
        if c.key in SIZE_KEYS and unit != "um":
            verdict, note = "n/a", "uncalibrated: sizes in px"
        elif not isinstance(value, (int, float)) or not math.isfinite(value):
            verdict, note = "n/a", "no value (too few particles)"
        else:
            verdict = "pass" if c.check(float(value)) else "fail"
        rows.append({"criterion": c.text, "value": value, "verdict": verdict, "note": note})
    verdicts = {r["verdict"] for r in rows}
    overall = "fail" if "fail" in verdicts else ("pass" if verdicts == {"pass"} else "n/a")
    return {"spec": ",".join(c.text for c in criteria), "verdict": overall if rows else "n/a", "criteria": rows}


def criteria_dicts(criteria: list[Criterion]) -> list[dict]:
    return [asdict(c) for c in criteria]
