"""`kubelab doctor`: is this computer ready for `vagrant up`?

Three layers, each usable alone:
  facts.py  what the host has (gathered for real, or read from a JSON file a learner sent),
  rules.py  pure functions from (facts, course) to findings: what is wrong, why it matters, the exact fix,
  cli.py    the command: a table of findings and an exit code (0 ready, 1 something to fix, 2 bad input).
"""

from kubelab.doctor.facts import HostFacts, HostNetwork, gather, load_facts
from kubelab.doctor.rules import Finding, evaluate

__all__ = ["HostFacts", "HostNetwork", "Finding", "evaluate", "gather", "load_facts"]
