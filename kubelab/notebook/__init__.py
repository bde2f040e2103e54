"""Notebook side of kubelab: `%load_ext kubelab.notebook` gives `%%node`, `%nodes` and `%answer`; `grade` scores a lab."""

from __future__ import annotations

from kubelab.notebook.answering import record_answer
from kubelab.notebook.grading import grade
from kubelab.notebook.magics import NodeCommandError, NodeError, NodeMagics

__all__ = ["grade", "record_answer", "load_ipython_extension", "unload_ipython_extension", "NodeError", "NodeCommandError",
           "NodeMagics"]


def load_ipython_extension(ipython) -> None:
    """`%load_ext kubelab.notebook`: register `%%node` and `%nodes`."""
    from kubelab.notebook.magics import load_ipython_extension as _load
    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    from kubelab.notebook.magics import unload_ipython_extension as _unload
    _unload(ipython)
