"""`kubelab lint`, version drift: what the labs' commands and the graders name must come from course.yaml.

course.yaml is the one source of truth for versions and package sources. A version, image tag or URL typed
into a notebook's code cell or a grader's code silently stays behind when course.yaml moves on (a new patch,
a classroom mirror). This rule finds them, in the places that run:

- the code cells of each lab's solution notebook (the released labs/ are generated from them), bash and
  Python comments left out;
- the graders' Python code and string literals (hints included), comments left out.

Markdown prose is not read: "dockershim was removed in 1.24" is history, not a pin. Reported:

1. a Kubernetes version (`1.NN`, `1.NN.P`, with or without `v`) of the course's minor or newer: a copy of
   course.yaml's value, or a pin that drifts (`$KUBELAB_K8S_VERSION`/`_MINOR` in notebooks and
   `course.model.versions` in graders say it once), and any full patch version. An older minor alone
   ("since 1.29") is history.
2. the CNI version of course.yaml, copied (`versions.cni.version`);
3. a URL on a host of course.yaml's package sources (a classroom's mirror would be bypassed), or a URL with a
   version in its path;
4. a container image with a tag, unless it is one of IMAGES_NOT_PINNED_BY_THE_COURSE below (each with why).
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path
from urllib.parse import urlsplit

from kubelab.course import LoadedCourse, Problem

# Images the labs name on purpose although course.yaml does not pin them, each with the reason. Adding one
# here is a reviewed decision; anything else with a tag is drift.
IMAGES_NOT_PINNED_BY_THE_COURSE = {
    "busybox:1.37": "the test pods' image (Labs 5, 9): any busybox with httpd, wget and nslookup serves; it is not part "
                    "of the cluster the course builds",
}

_K8S_VERSION = re.compile(r"(?<![\w.])v?1\.(\d{2})(?:\.(\d+))?(?![\w.]*\d)")
_URL = re.compile(r"https?://[^\s\"'`<>)\\]+")
_URL_VERSION = re.compile(r"/v?\d+\.\d+")
_IMAGE_FIELD = re.compile(r"\bimage:\s*[\"']?([^\s\"',}]+)")
_REGISTRY_IMAGE = re.compile(r"\b((?:registry\.k8s\.io|docker\.io|ghcr\.io|quay\.io|gcr\.io)/[\w./-]+:[\w.-]+)")
_SHELL_COMMENT = re.compile(r"(^|\s)#(?![!{]).*$")


def lint_drift(course: LoadedCourse) -> list[Problem]:
    problems: list[Problem] = []
    for lab in course.model.labs:
        nb = course.solution_path(lab.id)
        if nb.is_file():
            problems += _notebook(nb, course)
        grader = course.grader_path(lab.id)
        if grader.is_file():
            problems += _grader(grader, course)
    return problems


def _notebook(path: Path, course: LoadedCourse) -> list[Problem]:
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return []  # lint.py reports a notebook that is not one
    problems = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        code = "\n".join(_SHELL_COMMENT.sub("", line) for line in source.splitlines())
        where = f"cell {cell.get('id', '?')}"
        problems += [Problem(str(path), where, what, fix) for what, fix in find_drift(code, course)]
    return problems


def _grader(path: Path, course: LoadedCourse) -> list[Problem]:
    text = path.read_text(encoding="utf-8")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return []  # lint.py reports a grader that cannot be imported
    problems = []
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        problems += [Problem(str(path), f"line {tok.start[0]}", what, fix) for what, fix in find_drift(tok.string, course)]
    return problems


def find_drift(code: str, course: LoadedCourse) -> list[tuple[str, str]]:
    """(problem, fix) for every version, image or URL in `code` that does not come from course.yaml."""
    versions = course.model.versions
    minor = int(versions.kubernetes.minor.split(".")[1])
    found: list[tuple[str, str]] = []
    urls = _URL.findall(code)
    rest = _URL.sub(" ", code)
    for url in urls:
        found += _url_drift(url, course)
    images = {m.group(1) for m in _IMAGE_FIELD.finditer(rest)} | {m.group(1) for m in _REGISTRY_IMAGE.finditer(rest)}
    # an allowed image named outside an `image:` field (a notebook's IMAGE = "..." constant) is still an image
    images |= {image for image in IMAGES_NOT_PINNED_BY_THE_COURSE if image in rest}
    for image in sorted(images):
        rest = rest.replace(image, " ")  # an image's tag is judged as an image, not as a Kubernetes version
        if ":" not in image.rsplit("/", 1)[-1] or "$" in image or image in IMAGES_NOT_PINNED_BY_THE_COURSE:
            continue
        found.append((f"names the image {image}, which course.yaml does not pin",
                      "take it from the installed tools (e.g. `kubeadm config images list`) or from course.yaml; a "
                      "test image no cluster component depends on goes into lint_drift.IMAGES_NOT_PINNED_BY_THE_COURSE "
                      "with its reason"))
    for m in _K8S_VERSION.finditer(rest):
        if m.group(2) is None and int(m.group(1)) < minor:
            continue  # an older minor alone: history ("since 1.29"); a full patch is always a pin
        found.append((f"names Kubernetes {m.group(0)}; course.yaml pins {versions.kubernetes.patch}",
                      "use $KUBELAB_K8S_VERSION / $KUBELAB_K8S_MINOR in a notebook, course.model.versions.kubernetes "
                      "in a grader"))
    cni = versions.cni.version
    if re.search(rf"(?<![\w.]){re.escape(cni)}(?![\w.]*\d)", rest):
        found.append((f"copies the CNI version {cni} of course.yaml",
                      "read course.model.versions.cni.version (Lab 5 passes it as $FLANNEL_VERSION)"))
    return found


def _url_drift(url: str, course: LoadedCourse) -> list[tuple[str, str]]:
    try:
        parts = urlsplit(url)
    except ValueError:  # a URL built at run time ("https://{ips[0]}..."): nothing typed in to drift
        return []
    host = parts.hostname or ""
    found = []
    sources = {name: course.model.apt_source(name) for name in ("containerd", "kubernetes")}
    for name, src in sources.items():
        if host and host in {urlsplit(src.url).hostname, urlsplit(src.key_url).hostname}:
            found.append((f"hard-codes {url}, a host of course.yaml's package_sources.{name}",
                          f"use $KUBELAB_{name.upper()}_APT_LINE / _KEY_URL (a classroom mirror changes them)"))
    if "$" not in url and "{" not in url and _URL_VERSION.search(parts.path):
        found.append((f"names the versioned URL {url}",
                      "build it from a course.yaml value (e.g. ${FLANNEL_VERSION} from versions.cni.version)"))
    return found
