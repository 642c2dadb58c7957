"""The printed table and bench/results/latest.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.figures import Figure

RESULTS = Path(__file__).resolve().parent / "results"


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "ms":
        return f"{value:,.2f} ms"
    return f"{value:,.0f} {unit}"


def _ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _met(figure: Figure) -> str:
    met = figure.met
    return "-" if met is None else ("met" if met else "NOT MET")


def table(
    figures: list[Figure],
    *,
    header: dict[str, Any],
    ladders: dict[str, dict[str, float]],
    notes: list[str],
    errors: dict[str, str],
) -> str:
    rows = [("benchmark", "figure", "baseline", "ratio", "target", "result")]
    for f in figures:
        rows.append(
            (
                f.label,
                _number(f.value, f.unit),
                _number(f.baseline, f.unit),
                _ratio(f.ratio),
                f.target or "(none set)",
                _met(f),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    aligns = ["<", ">", ">", ">", "<", "<"]

    def line(row: tuple[str, ...]) -> str:
        cells = (f"{cell:{a}{w}}" for cell, a, w in zip(row, aligns, widths, strict=True))
        return "  ".join(cells).rstrip()

    out = [
        f"Concord benchmarks on {header['cpu_count']} cores (os.cpu_count()); "
        f"Python {header['python']}; {header['postgres']}; {header['nats']}",
        f"total {header['duration_seconds']:.0f} s; ratio = figure / baseline, both measured "
        "in this run; targets are reported, never enforced",
        "",
        line(rows[0]),
        line(tuple("-" * w for w in widths)),
        *(line(row) for row in rows[1:]),
        "",
        "baselines:",
    ]
    seen: set[str] = set()
    for f in figures:
        name = f.label.split(" ")[0]
        if name not in seen:
            seen.add(name)
            out.append(f"  {name}  {f.baseline_label}")
    for title, steps in ladders.items():
        if not steps:
            continue
        first = next(iter(steps.values()))
        out += ["", f"where the time goes, {title} (ratio to the first line):"]
        width = max(len(name) for name in steps)
        for name, rate in steps.items():
            out.append(
                f"  {name:<{width}}  {rate:>10,.0f}/s  "
                f"{_ratio(rate / first if first else math.nan):>7}"
            )
    if notes:
        out += ["", "notes:", *(f"  {note}" for note in notes)]
    if errors:
        out += ["", "errors (these benchmarks did not finish):"]
        out += [f"  {name}: {message}" for name, message in errors.items()]
    return "\n".join(out)


def write_json(
    figures: list[Figure],
    *,
    header: dict[str, Any],
    ladders: dict[str, dict[str, float]],
    notes: list[str],
    errors: dict[str, str],
    text: str,
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.json"
    document = {
        **header,
        "figures": [f.as_json() for f in figures],
        "targets": {f.key: f.met for f in figures if f.met is not None},
        "ladders": {k: {n: round(v, 1) for n, v in steps.items()} for k, steps in ladders.items()},
        "notes": notes,
        "errors": errors,
        "table": text,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
