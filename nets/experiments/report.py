"""What an experiment returns (:class:`Outcome`, with its :class:`Verdict` on the paper's claim) and how it is
written: ``DIR/NAME/results.csv`` (one row per model × seed × setting), ``results.json`` (the raw numbers, the
settings and :func:`nets.io.provenance`), ``figure.png`` and ``summary.md``; and the run's ``DIR/report.md`` and
``DIR/report.html`` linking every experiment found in ``DIR``. Every file is written atomically.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nets.io import atomic_open, atomic_write_json, atomic_write_text, jsonable, provenance

__all__ = ["Verdict", "Outcome", "FILES", "write_outcome", "write_report", "render_png", "markdown_table", "fmt"]

#: The files of one experiment's folder.
FILES: dict[str, str] = {"csv": "results.csv", "json": "results.json", "png": "figure.png", "md": "summary.md"}
RESULT_FORMAT = "prunelimit.experiments.Result/1"


@dataclass(frozen=True)
class Verdict:
    """Whether one claim of the paper holds on the data run: ``holds`` is ``True``, ``False`` or ``None``
    (inconclusive: not testable on this run), decided by ``criterion`` (stated with its threshold) on the
    ``evidence`` (numbers and seeds)."""

    claim: str
    criterion: str
    holds: bool | None
    evidence: str

    @property
    def status(self) -> str:
        return {True: "holds", False: "does not hold", None: "inconclusive"}[self.holds]

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "criterion": self.criterion, "holds": self.holds, "status": self.status,
                "evidence": self.evidence}


@dataclass
class Outcome:
    """An experiment's results: ``rows`` (the CSV: one per model × seed × setting), ``table`` (the compact table
    of the summary), ``raw`` (further numbers for the JSON), ``verdicts``, a one-line ``headline``, ``notes``
    (what was run and how to read it), the matplotlib ``figure`` and ``extra_tables`` (titled tables of the
    summary after the main one)."""

    name: str
    title: str
    reproduces: str
    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]
    verdicts: list[Verdict]
    headline: str
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    figure: Any = None
    extra_tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a table: ``digits`` significant digits, ``—`` for missing values.

    >>> fmt(0.123456), fmt(None), fmt(3), fmt(float("nan")), fmt(1.5e-7)
    ('0.1235', '—', '3', '—', '1.5e-07')
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        return f"{x:.{digits}g}"
    return str(x)


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (columns: the union of keys in order of appearance).

    >>> print(markdown_table([{"a": 1, "b": 0.5}, {"a": 2}]))
    | a | b |
    |---|---|
    | 1 | 0.5 |
    | 2 | — |
    """
    if not rows:
        return "(no rows)"
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)
                         for k, v in jsonable(r).items()})
    return buf.getvalue()


def _summary_md(outcome: Outcome, meta: dict[str, Any]) -> str:
    lines = [f"# {outcome.title}", "", f"*Reproduces:* {outcome.reproduces}", "",
             f"**{outcome.headline}**", "", "## The paper's claims on this run", ""]
    for v in outcome.verdicts:
        lines += [f"- **{v.claim}** — {v.status}.", f"  - criterion: {v.criterion}", f"  - evidence: {v.evidence}"]
    lines += ["", "## Results", "", markdown_table(outcome.table), ""]
    for heading, rows in outcome.extra_tables.items():
        lines += [f"### {heading}", "", markdown_table(rows), ""]
    if outcome.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in outcome.notes] + [""]
    lines += ["## Run", "",
              f"- scale `{meta['scale']}`, networks {', '.join(meta['models'])}, seeds {meta['seeds']}, "
              f"device {meta['device']}",
              f"- wall time {meta['wall_seconds']:.1f} s ({meta['cells_computed']} cells computed, "
              f"{meta['cells_cached']} read from earlier runs)",
              f"- files: [{FILES['csv']}]({FILES['csv']}), [{FILES['json']}]({FILES['json']})"
              + (f", [{FILES['png']}]({FILES['png']})" if outcome.figure is not None else ""), ""]
    if outcome.figure is not None:
        lines += [f"![{outcome.title}]({FILES['png']})", ""]
    return "\n".join(lines)


def render_png(figure: Any, dpi: int = 110) -> bytes | None:
    """The PNG bytes of a matplotlib figure (``None`` for no figure)."""
    if figure is None:
        return None
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write_outcome(folder: str | Path, outcome: Outcome, meta: dict[str, Any], png: bytes | None = None) -> dict[str, Path]:
    """Write ``outcome`` into ``folder`` (created): CSV, JSON (with ``meta`` and provenance), PNG, summary.

    ``meta`` carries ``scale``, ``models``, ``seeds``, ``device``, ``wall_seconds``, ``cells_computed``,
    ``cells_cached`` and ``settings`` (the scale's settings used). ``png``: the figure already rendered by
    :func:`render_png` (rendered here when not given).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["csv"] = atomic_write_text(folder / FILES["csv"], _csv_text(outcome.rows))
    record = {
        "format": RESULT_FORMAT,
        "experiment": outcome.name,
        "title": outcome.title,
        "reproduces": outcome.reproduces,
        "headline": outcome.headline,
        "verdicts": [v.to_dict() for v in outcome.verdicts],
        "notes": outcome.notes,
        "table": outcome.table,
        "extra_tables": outcome.extra_tables,
        "rows": outcome.rows,
        "raw": outcome.raw,
        "run": {k: v for k, v in meta.items()},
        "naming": "kept_fraction = k/N (the final paper's 'pruning ratio'); removed_fraction = 1 - kept_fraction",
        "provenance": provenance(meta.get("device")),
    }
    paths["json"] = atomic_write_json(folder / FILES["json"], jsonable(record), indent=1)
    png = render_png(outcome.figure) if png is None else png
    if png is not None:
        with atomic_open(folder / FILES["png"], "wb") as fh:
            fh.write(png)
        paths["png"] = folder / FILES["png"]
    elif (folder / FILES["png"]).exists():
        os.unlink(folder / FILES["png"])  # a stale figure of an earlier run would contradict the new results
    paths["md"] = atomic_write_text(folder / FILES["md"], _summary_md(outcome, meta))
    return paths


def _load_results(out: Path, order: list[str]) -> list[dict[str, Any]]:
    found = []
    for p in sorted(out.glob(f"*/{FILES['json']}")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if rec.get("format") == RESULT_FORMAT:
            rec["_folder"] = p.parent.name
            found.append(rec)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(found, key=lambda r: (rank.get(r["experiment"], len(rank)), r["experiment"]))


def _links(rec: dict[str, Any], folder: Path) -> list[tuple[str, str]]:
    name = rec["_folder"]
    return [(label, f"{name}/{FILES[k]}") for k, label in (("md", "summary"), ("png", "figure"), ("csv", "csv"),
                                                             ("json", "json")) if (folder / FILES[k]).is_file()]


def write_report(out: str | Path, order: list[str] | None = None, title: str = "prunelimit experiments") -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.html`` linking every experiment folder of ``out`` that holds a
    ``results.json`` (in ``order`` first). Returns both paths."""
    out = Path(out)
    recs = _load_results(out, order or [])
    md = [f"# {title}", "", "Each experiment regenerates one figure or table of *How Sparse Can We Prune A Deep "
          "Network* (Zhang et al., NeurIPS 2024) on the data at hand, and says whether the paper's claim holds.",
          "Kept fraction ρ = k/N (the final paper's pruning ratio); removed fraction = 1 − ρ.",
          "Wall time = the latest run of the experiment; cells = computed in it / read from earlier runs (a resumed "
          "run reads finished cells, so its time is not the cost of computing them).", "",
          "| experiment | reproduces | claims | wall time | cells | headline |", "|---|---|---|---|---|---|"]
    for r in recs:
        status = "; ".join(v["status"] for v in r["verdicts"]) or "—"
        md.append(f"| [{r['experiment']}]({r['_folder']}/{FILES['md']}) | {r['reproduces']} | {status} | "
                  f"{r['run']['wall_seconds']:.0f} s | {r['run']['cells_computed']}/{r['run']['cells_cached']} | "
                  f"{r['headline'].replace('|', chr(92) + '|')} |")
    md.append("")
    for r in recs:
        folder = out / r["_folder"]
        md += [f"## {r['title']}", "", f"*{r['reproduces']}* — " + " · ".join(f"[{a}]({b})" for a, b in _links(r, folder)),
               "", r["headline"], ""]
        md += [f"- **{v['claim']}** — {v['status']}: {v['evidence']}" for v in r["verdicts"]]
        md.append("")
        if (folder / FILES["png"]).is_file():
            md += [f"![{r['title']}]({r['_folder']}/{FILES['png']})", ""]
    md_path = atomic_write_text(out / "report.md", "\n".join(md))

    e = html.escape
    body = [f"<h1>{e(title)}</h1>", "<p>Each experiment regenerates one figure or table of <i>How Sparse Can We Prune "
            "A Deep Network</i> (Zhang et al., NeurIPS 2024) on the data at hand, and says whether the paper's claim "
            "holds. Kept fraction &rho; = k/N; removed fraction = 1 &minus; &rho;. Wall time = the latest run of the "
            "experiment; cells = computed in it / read from earlier runs.</p>",
            "<table><tr><th>experiment</th><th>reproduces</th><th>claims</th><th>wall time</th><th>cells</th>"
            "<th>headline</th></tr>"]
    for r in recs:
        status = "; ".join(v["status"] for v in r["verdicts"]) or "—"
        body.append(f"<tr><td><a href=\"{e(r['_folder'])}/{FILES['md']}\">{e(r['experiment'])}</a></td>"
                    f"<td>{e(r['reproduces'])}</td><td>{e(status)}</td><td>{r['run']['wall_seconds']:.0f} s</td>"
                    f"<td>{r['run']['cells_computed']}/{r['run']['cells_cached']}</td><td>{e(r['headline'])}</td></tr>")
    body.append("</table>")
    for r in recs:
        folder = out / r["_folder"]
        links = " &middot; ".join(f"<a href=\"{e(b)}\">{e(a)}</a>" for a, b in _links(r, folder))
        body += [f"<h2 id=\"{e(r['experiment'])}\">{e(r['title'])}</h2>", f"<p><i>{e(r['reproduces'])}</i> &mdash; {links}</p>",
                 f"<p><b>{e(r['headline'])}</b></p>", "<ul>"]
        body += [f"<li><b>{e(v['claim'])}</b> &mdash; {e(v['status'])}: {e(v['evidence'])}</li>" for v in r["verdicts"]]
        body.append("</ul>")
        if (folder / FILES["png"]).is_file():
            body.append(f"<img src=\"{e(r['_folder'])}/{FILES['png']}\" alt=\"{e(r['title'])}\" style=\"max-width:100%\">")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + e(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    html_path = atomic_write_text(out / "report.html", page)
    return md_path, html_path
