"""Lab twins: the course's nodes as Debian systems booted with systemd-nspawn, reached over SSH like the VMs.

    from kubelab.course import load_course
    from kubelab.twin import TwinSet

    twins = TwinSet(load_course())
    twins.up()                      # boot (idempotent); fresh=True for new root file systems
    cfg = twins.ssh_config_file()   # `vagrant ssh-config` format, for the graders
    twins.down()                    # stop; leaves nothing behind (twins.leftovers() == [])
"""

from kubelab.twin.twinset import TwinSet, TwinStatus

__all__ = ["TwinSet", "TwinStatus"]
