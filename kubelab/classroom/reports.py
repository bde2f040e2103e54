"""The class outputs: gradebook CSV, per-check pass rates (CSV and PNG), class report (Markdown, JSON,
console table).

Files in OUT:

- ``gradebook.csv`` — learner, lab, score, max, status, reason (score empty for an error: not graded)
- ``pass_rates.csv`` — check, title, passed, learners, pass_rate: for every check of the lab, the learners
  whose every node passed it, out of the learners for whom it could be graded (a learner without a result,
  or whose check could not be observed or was skipped, is not counted for it)
- ``pass_rates.png`` — the same as a bar chart
- ``report.md`` and ``report.json`` — counts by status, scores, copy detection, the learners to look at
"""

from __future__ import annotations

import csv
import html
import io
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubelab.classroom.copies import shared_identities

GRADEBOOK = "gradebook.csv"
PASS_RATES_CSV = "pass_rates.csv"
PASS_RATES_PNG = "pass_rates.png"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
# every learner row has one of these: graded (passed/failed), flagged (graded, but the evidence is
# inconsistent: see evidence/honesty.py), missing (score 0), error (not graded, one-line reason)
STATUSES = ("passed", "failed", "flagged", "missing", "error")
STYLE = {"passed": "green", "failed": "red", "flagged": "bold red", "missing": "yellow", "error": "magenta"}


def _pts(x) -> str:
    return "" if x is None else f"{x:g}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_gradebook(out: Path, records: list[dict]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["learner", "lab", "score", "max", "status", "reason"])
    for r in records:
        w.writerow([r["learner"], r["lab"], _pts(r.get("score")), _pts(r.get("max")), r["status"], r.get("reason") or ""])
    path = out / GRADEBOOK
    _write(path, buf.getvalue())
    return path


def pass_rates(records: list[dict]) -> list[dict]:
    order: dict[str, str] = {}      # check name -> title, in the grader's order
    passed: dict[str, int] = {}
    counted: dict[str, int] = {}
    for r in records:
        result = r.get("result")
        if not result:
            continue
        per_check: dict[str, list[str]] = {}
        for c in result["checks"]:
            order.setdefault(c["check"], c["title"])
            per_check.setdefault(c["check"], []).append(c["status"])
        for name, statuses in per_check.items():
            if any(s in ("error", "skipped") for s in statuses):
                continue
            counted[name] = counted.get(name, 0) + 1
            if all(s == "pass" for s in statuses):
                passed[name] = passed.get(name, 0) + 1
    rows = []
    for name, title in order.items():
        n = counted.get(name, 0)
        k = passed.get(name, 0)
        rows.append({"check": name, "title": title, "passed": k, "learners": n,
                     "pass_rate": round(k / n, 4) if n else None})
    return rows


def write_pass_rates(out: Path, rows: list[dict], lab_title: str) -> tuple[Path, Path]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["check", "title", "passed", "learners", "pass_rate"])
    for row in rows:
        w.writerow([row["check"], row["title"], row["passed"], row["learners"],
                    "" if row["pass_rate"] is None else f"{row['pass_rate']:.4f}"])
    csv_path = out / PASS_RATES_CSV
    _write(csv_path, buf.getvalue())
    png_path = out / PASS_RATES_PNG
    _bar_chart(png_path, rows, lab_title)
    return csv_path, png_path


def _bar_chart(path: Path, rows: list[dict], lab_title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    labels = [r["title"] if len(r["title"]) <= 60 else r["title"][:57] + "…" for r in rows]
    values = [100 * (r["pass_rate"] or 0) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.42 * max(1, len(rows))), dpi=100)
    try:
        y = list(range(len(rows)))
        colors = ["#1a7f37" if v >= 80 else "#9a6700" if v >= 50 else "#cf222e" for v in values]
        ax.barh(y, values, color=colors)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()  # the grader's first check on top
        ax.set_xlim(0, 100)
        ax.set_xlabel("learners who passed (%)")
        ax.set_title(f"{lab_title}: pass rate of every check")
        for yi, r, v in zip(y, rows, values):
            text = f"{r['passed']}/{r['learners']}" if r["learners"] else "not graded"
            inside = v > 85  # no room right of a full bar: write inside it
            ax.text(v - 1 if inside else v + 1, yi, text, va="center", ha="right" if inside else "left",
                    fontsize=8, color="white" if inside else "black")
        fig.tight_layout()
        tmp = path.with_name(f".{path.stem}.tmp.png")
        fig.savefig(tmp, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)


def summary(records: list[dict], lab_id: str, title: str, points: float, run: dict) -> dict:
    scores = [r["score"] for r in records if r["status"] in ("passed", "failed", "flagged")]
    by_status = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    return {
        "lab": lab_id, "title": title, "points": points,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "learners": len(records), "by_status": by_status,
        "scores": {"graded": len(scores),
                   "mean": round(statistics.fmean(scores), 2) if scores else None,
                   "median": round(statistics.median(scores), 2) if scores else None,
                   "min": min(scores) if scores else None, "max": max(scores) if scores else None},
        "this_run": run,
        "copies": shared_identities(records),
        "errors": [{"learner": r["learner"], "kind": r.get("error_kind"), "reason": r.get("reason")}
                   for r in records if r["status"] == "error"],
        "missing": [r["learner"] for r in records if r["status"] == "missing"],
        "flagged": [{"learner": r["learner"], "score": r.get("score"), "flags": r.get("flags") or []}
                    for r in records if r["status"] == "flagged"],
    }


def write_report(out: Path, report: dict, records: list[dict], rates: list[dict]) -> tuple[Path, Path]:
    json_path = out / REPORT_JSON
    _write(json_path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    md = [f"# {report['lab']} — {report['title']}: class report", "",
          f"Generated {report['generated_at']}. {report['learners']} learners: "
          + ", ".join(f"{n} {s}" for s, n in report["by_status"].items() if n) + ".", ""]
    s = report["scores"]
    if s["graded"]:
        md += [f"Scores (out of {report['points']:g}, {s['graded']} graded): mean {s['mean']:g}, median {s['median']:g}, "
               f"min {s['min']:g}, max {s['max']:g}.", ""]
    md += ["## Possible copies", ""]
    if report["copies"]:
        md += ["Submissions sharing a machine or a cluster identity (a lead to check, not a verdict):", "",
               "| identity | value | learners (nodes) |", "| --- | --- | --- |"]
        for f in report["copies"]:
            who = "; ".join(f"{l} ({', '.join(nodes)})" for l, nodes in f["where"].items())
            md.append(f"| {f['kind']} | `{f['value']}` | {_md(who)} |")
    else:
        md.append("No two submissions share a machine-id, a kube-system UID or an etcd cluster ID.")
    md += ["", "## Flagged evidence", ""]
    if report.get("flagged"):
        md += ["Graded, but the evidence contradicts itself (edited after recording, recorded against another "
               "course.yaml, or identity missing): look at these before accepting the score.", "",
               "| learner | score | reasons |", "| --- | --- | --- |"]
        md += [f"| {_md(f['learner'])} | {_pts(f['score'])} | {_md('; '.join(f['flags']))} |" for f in report["flagged"]]
    else:
        md.append("No evidence was flagged.")
    md += ["", "## Not graded", ""]
    if report["errors"]:
        md += ["These learners could not be graded (no score was given): fix the cause and run the same command "
               "again; it grades only them.", "", "| learner | kind | reason |", "| --- | --- | --- |"]
        md += [f"| {_md(e['learner'])} | {e['kind']} | {_md(e['reason'] or '')} |" for e in report["errors"]]
    else:
        md.append("Every learner was graded.")
    if report["missing"]:
        md += ["", f"No evidence handed in (score 0): {_md(', '.join(report['missing']))}."]
    md += ["", "## Pass rate of every check", "", "| check | passed | pass rate |", "| --- | --- | --- |"]
    for r in rates:
        rate = "–" if r["pass_rate"] is None else f"{100 * r['pass_rate']:.0f}%"
        md.append(f"| {_md(r['title'])} | {r['passed']}/{r['learners']} | {rate} |")
    md += ["", f"![pass rates]({PASS_RATES_PNG})", "", "## Learners", "", "| learner | score | status | reason |",
           "| --- | --- | --- | --- |"]
    for r in records:
        score = "–" if r.get("score") is None else f"{r['score']:g}/{r['max']:g}"
        md.append(f"| {_md(r['learner'])} | {score} | {r['status']} | {_md(r.get('reason') or '')} |")
    md_path = out / REPORT_MD
    _write(md_path, "\n".join(md) + "\n")
    return md_path, json_path


def _md(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def print_report(console: Console, report: dict, records: list[dict], out: Path) -> None:
    # Text() everywhere: learner names and reasons are data (a folder named `[/x]` is not rich markup)
    table = Table(title=Text(f"{report['lab']} — {report['title']}"), title_justify="left")
    table.add_column("learner")
    table.add_column("score", justify="right")
    table.add_column("status")
    table.add_column("reason", overflow="fold")
    for r in records:
        score = "–" if r.get("score") is None else f"{r['score']:g}/{r['max']:g}"
        table.add_row(Text(str(r["learner"])), Text(score), Text(r["status"], style=STYLE.get(r["status"], "")),
                      Text(r.get("reason") or ""))
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report["by_status"].items() if n)
    run = report["this_run"]
    console.print(f"{report['learners']} learners: {counts} — this run graded {run['graded']}, "
                  f"skipped {run['skipped']} already graded (input unchanged; --force regrades them)",
                  markup=False, soft_wrap=True)
    for f in report["copies"]:
        who = "; ".join(f"{l} ({', '.join(nodes)})" for l, nodes in f["where"].items())
        console.print(Text(f"possible copy: {len(f['learners'])} learners share {f['kind']} {f['value']}: {who}",
                           style="yellow"), soft_wrap=True)
    for f in report.get("flagged", []):
        console.print(Text(f"flagged: {f['learner']}: " + "; ".join(f["flags"]), style="bold red"), soft_wrap=True)
    if report["errors"]:
        console.print(Text(f"{len(report['errors'])} learner(s) could not be graded: see the reasons above; "
                           "run the same command again to grade only them", style="magenta"), soft_wrap=True)
    console.print(f"written to {out}: {GRADEBOOK}, learners/*.json, {PASS_RATES_CSV}, {PASS_RATES_PNG}, "
                  f"{REPORT_MD}, {REPORT_JSON}", markup=False, soft_wrap=True)


def write_all(out: Path, records: list[dict], lab_id: str, title: str, points: float, run: dict) -> dict:
    rates = pass_rates(records)
    write_gradebook(out, records)
    write_pass_rates(out, rates, f"{lab_id} — {title}")
    report = summary(records, lab_id, title, points, run)
    write_report(out, report, records, rates)
    return report
