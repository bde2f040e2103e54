"""kubelab: a hands-on Kubernetes architecture course with its own autograder."""

__version__ = "0.1.0"
