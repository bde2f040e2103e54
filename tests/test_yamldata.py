"""kubelab.engine.load_yaml (libyaml's safe loader) reads what graders read exactly as yaml.safe_load (PyYAML's
pure-Python safe loader) does. Proof: evidence from real captures (shared/realdata: kubeadm's static pod manifests,
a kubelet config, Node and Pod lists as JSON), compared with the pure-Python loader as the reference."""

from __future__ import annotations

import pytest
import yaml

from helpers import shared_realdata
from kubelab.engine import load_yaml
from kubelab.engine.yamldata import SAFE_LOADER, load_yaml_all

CAPTURES = ["static-pod-manifests", "kubelet-config", "nodes-json", "pods-json"]


def test_the_fast_loader_is_libyaml_here():
    """A fact about this machine (no simulation): PyYAML was built with libyaml, so the fast path is the one tested."""
    assert yaml.__with_libyaml__ and SAFE_LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("sub", CAPTURES)
def test_real_captures_read_the_same_as_with_pure_python_yaml(sub):
    """Evidence from real captures (shared/realdata/<sub>): every file gives the same data with both loaders."""
    files = [p for p in sorted(shared_realdata(sub).iterdir()) if p.suffix in (".yaml", ".json")]
    assert files, f"no YAML or JSON capture in shared/realdata/{sub}"
    for path in files:
        text = path.read_text(encoding="utf-8")
        expected = yaml.safe_load(text)
        assert isinstance(expected, (dict, list)) and expected, path  # a real document, not an empty one
        assert load_yaml(text) == expected, path


def test_several_documents_read_the_same():
    """A literal stream of two documents (as `kubeadm config print` writes InitConfiguration---ClusterConfiguration)."""
    text = "kind: InitConfiguration\nbootstrapTokens: []\n---\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n"
    assert load_yaml_all(text) == list(yaml.safe_load_all(text)) == [
        {"kind": "InitConfiguration", "bootstrapTokens": []},
        {"kind": "ClusterConfiguration", "networking": {"podSubnet": "10.244.0.0/16"}}]


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: b: c\n", "key: 'unterminated\n", "\t- tab\n"])
def test_broken_yaml_raises_yamlerror_as_safe_load_does(text):
    """Literal broken documents: both loaders refuse them with yaml.YAMLError (what graders catch)."""
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError):
        load_yaml(text)


def test_deep_nesting_is_a_yamlerror_not_a_crash():
    """A crafted observation nested 100000 levels deep is refused by libyaml's depth limit with a YAMLError."""
    with pytest.raises(yaml.YAMLError):
        load_yaml("[" * 100_000 + "]" * 100_000)
