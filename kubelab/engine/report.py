"""A LabResult as a terminal table, JSON, JUnit XML, or an HTML table for the notebook."""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubelab.engine.results import LabResult, Status

STYLE = {Status.PASS: "green", Status.FAIL: "red", Status.BLOCKED: "yellow", Status.ERROR: "magenta",
         Status.SKIPPED: "dim"}
MARK = {Status.PASS: "✓", Status.FAIL: "✗", Status.BLOCKED: "⊘", Status.ERROR: "!", Status.SKIPPED: "–"}


def _pts(x: float) -> str:
    return f"{x:g}"


def print_table(result: LabResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result.lab} — {result.title}", title_justify="left", show_lines=False)
    table.add_column("check")
    table.add_column("node")
    table.add_column("points", justify="right")
    table.add_column("status")
    for c in result.checks:
        table.add_row(c.title, c.node, f"{_pts(c.points)}/{_pts(c.max_points)}",
                      Text(f"{MARK[c.status]} {c.status}", style=STYLE[c.status]))
    console.print(table)
    for c in result.checks:
        if c.status is Status.PASS:
            continue
        head = Text(f"{MARK[c.status]} {c.title} [{c.node}]", style=STYLE[c.status])
        console.print(head, soft_wrap=True)
        if c.status is Status.FAIL:
            console.print(f"    expected: {c.expected}", markup=False, soft_wrap=True)
            console.print(f"    actual:   {c.actual}", markup=False, soft_wrap=True)
            if c.message:
                console.print(f"    note:     {c.message}", markup=False, soft_wrap=True)
            console.print(f"    hint:     {c.hint}", markup=False, soft_wrap=True)
        else:
            console.print(f"    {c.message}", markup=False, soft_wrap=True)
    summary = (f"score {_pts(result.score)}/{_pts(result.max_score)} — {result.count(Status.PASS)} passed, "
               f"{result.count(Status.FAIL)} failed, {result.count(Status.BLOCKED)} blocked, "
               f"{result.count(Status.ERROR)} error, {result.count(Status.SKIPPED)} skipped "
               f"({result.duration_s:.1f}s, {result.target})")
    console.print(Text(summary, style="bold " + {"passed": "green", "failed": "red", "error": "magenta"}[result.status]), soft_wrap=True)
    if result.status == "error":
        console.print("Some checks could not observe the nodes: this is an infrastructure problem, not your score.",
                      markup=False)


def write_json(result: LabResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")


def write_junit(result: LabResult, path: str | Path) -> None:
    suite = ET.Element("testsuite", name=result.lab, tests=str(len(result.checks)),
                       failures=str(result.count(Status.FAIL) + result.count(Status.BLOCKED)),
                       errors=str(result.count(Status.ERROR)), skipped=str(result.count(Status.SKIPPED)),
                       time=f"{result.duration_s:.3f}", timestamp=result.started_at)
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"{result.lab}.{c.check}", name=f"{c.title} [{c.node}]",
                             time=f"{c.duration_s:.3f}")
        ET.SubElement(case, "properties")
        props = case.find("properties")
        for key, value in (("points", _pts(c.points)), ("max_points", _pts(c.max_points)), ("node", c.node)):
            ET.SubElement(props, "property", name=key, value=value)
        if c.status is Status.FAIL:
            el = ET.SubElement(case, "failure", message=f"expected {c.expected}, got {c.actual}")
            el.text = (f"expected: {c.expected}\nactual: {c.actual}\n" + (f"note: {c.message}\n" if c.message else "")
                       + f"hint: {c.hint}")
        elif c.status is Status.BLOCKED:
            ET.SubElement(case, "failure", message=c.message or "blocked", type="blocked")
        elif c.status is Status.ERROR:
            ET.SubElement(case, "error", message=c.message or "error")
        elif c.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=c.message or "skipped")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


HTML_COLOR = {Status.PASS: "#1a7f37", Status.FAIL: "#cf222e", Status.BLOCKED: "#9a6700", Status.ERROR: "#8250df",
              Status.SKIPPED: "#6e7781"}


def to_html(result: LabResult) -> str:
    e = html.escape
    rows = []
    for c in result.checks:
        detail = ""
        if c.status is Status.FAIL:
            detail = (f"<b>expected</b> <code>{e(str(c.expected))}</code><br><b>actual</b> <code>{e(str(c.actual))}</code>"
                      + (f"<br><b>note</b> {e(c.message)}" if c.message else "") + f"<br><b>hint</b> {e(c.hint)}")
        elif c.status is not Status.PASS:
            detail = e(c.message or "")
        rows.append(
            f"<tr><td style='text-align:left'>{e(c.title)}</td><td>{e(c.node)}</td>"
            f"<td>{_pts(c.points)}/{_pts(c.max_points)}</td>"
            f"<td style='color:{HTML_COLOR[c.status]};font-weight:bold'>{MARK[c.status]} {c.status}</td>"
            f"<td style='text-align:left'>{detail}</td></tr>")
    color = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8250df"}[result.status]
    note = ("<p>Some checks could not observe the nodes: an infrastructure problem, not your score. "
            "Check that the nodes are up and run this cell again.</p>" if result.status == "error" else "")
    return (f"<div class='kubelab-grade'><h4>{e(result.lab)} — {e(result.title)}: "
            f"<span style='color:{color}'>{_pts(result.score)}/{_pts(result.max_score)}</span></h4>"
            "<table><thead><tr><th style='text-align:left'>check</th><th>node</th><th>points</th><th>status</th>"
            "<th style='text-align:left'>details</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + note + "</div>")
