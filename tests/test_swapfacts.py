"""Lab 1's reading of what turns swap on at boot besides /etc/fstab (kubelab.swapfacts).

Proof: unit — SWAP_AT_BOOT's output as a Debian node prints it (`systemctl list-unit-files --type=swap`: fstab's
lines are `generated`, a unit of one's own `enabled`; `systemctl is-enabled zramswap.service`; the zram-generator
binary and its config files in zram-generator's documented order). The grader's check runs on live twins in
tests/test_lab01.py::test_swap_from_a_unit_or_zram_fails_live."""

from __future__ import annotations

from kubelab.swapfacts import boot_swaps

CLEAN = """== swap units
dev-sda5.swap generated -
== zramswap
== zram-generator
== cmdline
BOOT_IMAGE=/boot/vmlinuz-6.1.0-40-amd64 root=UUID=0 ro quiet
"""


def test_a_clean_node_and_fstab_units_are_not_counted():
    assert boot_swaps(CLEAN) == []
    assert boot_swaps("") == []


def test_an_enabled_swap_unit_counts_a_disabled_or_masked_one_does_not():
    out = CLEAN.replace("dev-sda5.swap generated -", "dev-sda5.swap generated -\nswapfile.swap enabled enabled\n"
                        "old.swap disabled enabled\nz.swap masked enabled")
    assert boot_swaps(out) == ["swapfile.swap (systemd swap unit, enabled)"]


def test_zramswap_enabled_counts():
    assert boot_swaps(CLEAN.replace("== zramswap\n", "== zramswap\nenabled\n")) == \
        ["zramswap.service (zram-tools, enabled)"]
    assert boot_swaps(CLEAN.replace("== zramswap\n", "== zramswap\ndisabled\n")) == []


GEN = CLEAN.replace("== zram-generator\n", "== zram-generator\n/lib/systemd/system-generators/zram-generator\n")


def test_zram_generator_with_a_device_section_counts():
    on = GEN + "== main /etc/systemd/zram-generator.conf\n[zram0]\nzram-size = ram / 2\n\n"
    assert boot_swaps(on) == ["zram-generator: zram0 (/etc/systemd/zram-generator.conf)"]
    # the same config with the generator not installed, or switched off on the kernel command line: nothing
    assert boot_swaps(CLEAN + "== main /etc/systemd/zram-generator.conf\n[zram0]\n") == []
    assert boot_swaps(on.replace("quiet", "quiet systemd.zram=0")) == []


def test_zram_generator_first_main_file_wins_and_dropins_add():
    commented = GEN + ("== main /etc/systemd/zram-generator.conf\n# [zram0]\n\n"
                       "== main /usr/lib/systemd/zram-generator.conf\n[zram0]\n\n")
    assert boot_swaps(commented) == []   # /etc hides /usr/lib's default
    dropin = commented + "== dropin /etc/systemd/zram-generator.conf.d/big.conf\n[zram1]\n\n"
    assert boot_swaps(dropin) == ["zram-generator: zram1 (/etc/systemd/zram-generator.conf.d/big.conf)"]
