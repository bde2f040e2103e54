"""What turns swap on at boot besides /etc/fstab, read the way systemd reads it: pure parsing, no I/O.

- swap units of their own (`/etc/systemd/system/*.swap`) that are enabled: systemd starts them with
  swap.target. fstab's lines become *generated* units (systemd-fstab-generator): they are fstab's business.
- zram swap: zram-tools' `zramswap.service` enabled, or systemd's zram-generator (systemd-zram-generator) with a
  config naming a `[zramN]` device — the first main config found in /run, /etc, /usr/local/lib, /usr/lib
  (Debian's package ships /etc/systemd/zram-generator.conf), plus every drop-in; the kernel command line's
  `systemd.zram=0` turns it off as well.

`SWAP_AT_BOOT` is the one command a grader runs; `boot_swaps(output)` names what would turn swap on."""

from __future__ import annotations

import re

# zram-generator's own order: the first main file found wins (its README); drop-ins from every *.conf.d
_ZRAM_MAIN = ("/run/systemd/zram-generator.conf", "/etc/systemd/zram-generator.conf",
              "/usr/local/lib/systemd/zram-generator.conf", "/usr/lib/systemd/zram-generator.conf")
_ZRAM_DROPINS = " ".join(f"{p}.d/*.conf" for p in _ZRAM_MAIN)
_GENERATORS = "/usr/lib/systemd/system-generators/zram-generator /lib/systemd/system-generators/zram-generator"

SWAP_AT_BOOT = (
    "echo '== swap units'; systemctl list-unit-files --type=swap --no-legend --no-pager 2>/dev/null; "
    "echo '== zramswap'; systemctl is-enabled zramswap.service 2>/dev/null; "
    f"echo '== zram-generator'; for f in {_GENERATORS}; do [ -e \"$f\" ] && echo \"$f\"; done; "
    "echo '== cmdline'; cat /proc/cmdline; "
    f"for f in {' '.join(_ZRAM_MAIN)}; do [ -e \"$f\" ] && {{ echo \"== main $f\"; cat \"$f\"; echo; }}; done; "
    f"for f in {_ZRAM_DROPINS}; do [ -e \"$f\" ] && {{ echo \"== dropin $f\"; cat \"$f\"; echo; }}; done; true")


def _sections(output: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith("== "):
            out.append((line[3:].strip(), []))
        elif out:
            out[-1][1].append(line)
    return out


def boot_swaps(output: str) -> list[str]:
    """What SWAP_AT_BOOT's output shows turning swap on at boot, each as a short phrase for the learner."""
    found = []
    mains, dropins = [], []
    generator, zram_off = False, False
    for head, lines in _sections(output):
        if head == "swap units":
            for line in lines:
                words = line.split()
                if len(words) >= 2 and words[1] in ("enabled", "enabled-runtime", "linked", "linked-runtime"):
                    found.append(f"{words[0]} (systemd swap unit, {words[1]})")
        elif head == "zramswap":
            state = " ".join(lines).strip()
            if state.startswith("enabled"):
                found.append("zramswap.service (zram-tools, enabled)")
        elif head == "zram-generator":
            generator = any(line.strip() for line in lines)
        elif head == "cmdline":
            zram_off = bool(re.search(r"(^|\s)systemd\.zram=(0|no|false|off)(\s|$)", " ".join(lines)))
        elif head.startswith("main "):
            mains.append((head[5:], lines))
        elif head.startswith("dropin "):
            dropins.append((head[7:], lines))
    if generator and not zram_off:
        config = mains[:1] + dropins       # the first main file by precedence hides the others
        devices = sorted({m.group(1) for _, lines in config for line in lines
                          if (m := re.match(r"^\s*\[(zram\d+)\]\s*$", line))})
        if devices:
            files = ", ".join(path for path, lines in config if any(re.match(r"^\s*\[zram\d+\]", ln) for ln in lines))
            found.append(f"zram-generator: {', '.join(devices)} ({files})")
    return found
