"""The grading engine. Grader modules import their vocabulary from here."""

from kubelab.engine.checks import (CheckFailed, check, eventually, expect_contains, expect_equal, expect_true,
                                   fail)

__all__ = ["CheckFailed", "check", "eventually", "expect_contains", "expect_equal", "expect_true", "fail"]
