"""Errors the Kubernetes API answered with, as graders test for them, without importing the official client.

A grader that imports `kubernetes.client.exceptions.ApiException` at module level makes every replay pay for the
`kubernetes` package (its config loaders, google-auth, oauthlib: ~0.12 s), though a replay answers API reads from
evidence without it (kubelite.py). An exception can only be the client's ApiException once the client's module is
loaded, so looking it up in sys.modules tells the same thing at no cost."""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of an error the API server answered with (the official client's ApiException and its
    subclasses), or None for any other exception."""
    module = sys.modules.get("kubernetes.client.exceptions")
    if module is not None and isinstance(exc, module.ApiException):
        return exc.status
    return None


def read_or_none(read: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """read(*args, **kwargs), e.g. kube.core.read_namespaced_pod(name, namespace), or None where the API server
    answers that there is no such object (404). Any other error is raised as it came."""
    try:
        return read(*args, **kwargs)
    except Exception as e:
        if api_status(e) == 404:
            return None
        raise
