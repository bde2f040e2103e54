"""The grading engine. Grader modules import their vocabulary from here."""

from kubelab.engine.apierrors import api_status, read_or_none
from kubelab.engine.checks import (CheckFailed, check, eventually, expect_contains, expect_equal, expect_true,
                                   fail)
from kubelab.engine.cmdline import flag_values
from kubelab.engine.yamldata import load_yaml

__all__ = ["CheckFailed", "api_status", "check", "eventually", "expect_contains", "expect_equal", "expect_true", "fail",
           "flag_values", "load_yaml", "read_or_none"]
