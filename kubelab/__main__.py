"""`python -m kubelab`: the same CLI as the `kubelab` command."""

from kubelab.cli import main

main()
