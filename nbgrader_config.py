# nbgrader configuration of the kubelab course (nbgrader 0.9.x). nbgrader reads it from the current
# directory; run nbgrader commands from the repository root.
#
# Layout: an nbgrader *assignment* is a lab, named by its id in course.yaml:
#   solutions/<lab>/<notebook>   instructor version (source), with ### BEGIN/END SOLUTION regions
#   labs/<lab>/<notebook>        learner version (release), written by `python -m kubelab.notebook.release`
#                                (which runs `nbgrader generate_assignment <lab>` in a temporary copy)
# The gradebook and the exchange live outside the repository, in $KUBELAB_NBGRADER_HOME
# (default ~/.kubelab/nbgrader), so nbgrader never writes into the checkout except labs/.
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

_root = Path(__file__).resolve().parent
_home = Path(os.environ.get("KUBELAB_NBGRADER_HOME") or "~/.kubelab/nbgrader").expanduser().resolve()


def _course_id(default: str = "kubelab") -> str:
    try:
        import yaml

        return str(yaml.safe_load((_root / "course.yaml").read_text(encoding="utf-8"))["course"]["id"])
    except Exception:  # a broken course.yaml is `kubelab lint`'s to report, not nbgrader's
        return default


c.CourseDirectory.root = str(_root)
c.CourseDirectory.course_id = _course_id()
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.db_url = f"sqlite:///{_home / 'gradebook.db'}"
c.Exchange.root = str(_home / "exchange")

# A solution region in a `%%node` cell is bash and in a Python cell is Python: the stub is a comment in both.
c.ClearSolutions.code_stub = {"python": "# YOUR COMMANDS HERE"}

# Cells wait for the cluster (kubeadm init, nodes becoming Ready): nbgrader's default of 30 s is far too short.
c.ExecutePreprocessor.timeout = 600

try:  # sqlite creates the gradebook file, not its folder
    _home.mkdir(parents=True, exist_ok=True)
except OSError:
    pass
