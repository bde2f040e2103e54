"""`%trace` and `trace()` in a real notebook, drawn by a real JupyterLab in a real browser (headless Chromium
driven by Playwright, as tests/test_provision.py does for Lab 1).

Kind of proof: recorded evidence from the twins' real 1.20 cluster (tests/data/trace, written by
tests/test_trace_live.py), drawn by a real kernel, real JupyterLab 4 (this venv's, started here), real Chromium.
The test waits for the SVG JupyterLab's mermaid renderer drew and reads the participants' names out of it. The
screenshot is kept in $KUBELAB_TEST_ARTIFACTS, else the test's tmp dir."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import unquote
from pathlib import Path

import nbformat
import pytest

from helpers import REPO, execute_notebook, playwright_chromium
from kubelab.twin import hostcmd

DATA = REPO / "tests" / "data" / "trace"

NS = "trace-live"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} within {timeout_s:.0f}s", pytrace=False)


def test_notebook_draws_the_trace_as_a_mermaid_svg(tmp_path):
    """recorded evidence from the twins' real 1.20 cluster, drawn by a real kernel, JupyterLab and Chromium."""
    sync_playwright, chromium = playwright_chromium()
    work = tmp_path / "nb"
    work.mkdir()
    for f in DATA.glob("*.trace.json"):
        shutil.copy(f, work / f.name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# What happened to my pod"),
                nbformat.v4.new_code_cell("%load_ext kubelab.notebook"),
                nbformat.v4.new_code_cell(f"%trace pod web-1 -n {NS} --evidence web-1.audit.trace.json"),
                nbformat.v4.new_code_cell("from kubelab.notebook import trace\n"
                                          f"trace('pod', 'web-1', '{NS}', evidence='web-1.no-audit.trace.json')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    execute_notebook(nb, work, {"KUBELAB_COURSE": str(REPO), "PYTHONPATH": str(REPO)})
    outputs = [o for c in nb.cells[2:] for o in c.outputs]
    assert all(o.output_type == "execute_result" and "text/vnd.mermaid" in o.data for o in outputs), outputs
    nbformat.write(nb, work / "trace.ipynb")

    artifacts = Path(os.environ.get("KUBELAB_TEST_ARTIFACTS") or tmp_path / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "jupyterlab-trace.png"
    port, token = free_port(), secrets.token_hex(16)
    jupyter_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
                   "PYTHONPATH": str(REPO)}
    log = (tmp_path / "jupyter.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            env=jupyter_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/api/status?token={token}", proc)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=chromium,
                                                            headless=True, args=flags,
                                                            viewport={"width": 1500, "height": 1400})
            try:
                page = browser.new_page()
                page.goto(f"{base}/lab/tree/trace.ipynb?token={token}", wait_until="domcontentloaded", timeout=90_000)
                # JupyterLab's mermaid renderer puts the SVG it drew into an <img> as a data: URL
                diagrams = page.locator(".jp-OutputArea-output .jp-RenderedMermaid img[src^='data:image/svg+xml']")
                diagrams.first.wait_for(state="attached", timeout=120_000)
                page.wait_for_function("document.querySelectorAll(\".jp-OutputArea-output .jp-RenderedMermaid "
                                       "img[src^='data:image/svg+xml']\").length >= 2", timeout=60_000)
                page.wait_for_timeout(1000)  # let the layout settle for the picture
                page.screenshot(path=str(shot), full_page=True)
                svgs = [unquote(diagrams.nth(i).get_attribute("src").split(",", 1)[1]) for i in range(2)]
                # the renderer drew the diagrams (participants and messages as SVG text), not an error
                assert all("<svg" in svg for svg in svgs)
                for name in ("kubectl as kubernetes-admin", "kube-scheduler", "kubelet on worker", "etcd"):
                    assert name in svgs[0], (name, svgs[0][:300])
                assert "pods/web-1/binding" in svgs[0] and "Syntax error" not in "".join(svgs)
                assert "audit log would show" in svgs[1]
            finally:
                browser.close()
    finally:
        hostcmd.stop(proc, grace_s=20)
        log.close()
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 20_000
