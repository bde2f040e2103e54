"""Errors a person can act on: one line naming the problem, one naming the fix."""

from __future__ import annotations


class KubelabError(Exception):
    """An error shown to a user as `error: PROBLEM` plus `fix: FIX`, never as a traceback."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem + (f" (fix: {self.fix})" if self.fix else "")


class UsageError(KubelabError):
    """Bad usage or bad input: exit code 2."""


class InfrastructureError(KubelabError):
    """The grader or the tool could not reach or drive what it needs: exit code 3."""

    exit_code = 3
