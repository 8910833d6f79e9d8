"""The public surface: every exported name resolves, is documented in the API reference with an
example, and the examples and the gallery use only public names."""

import importlib
import re
from pathlib import Path

import pytest

import skphys

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = ["skphys", "skphys.datasets", "skphys.metrics", "skphys.display", "skphys.utils"]
SUBMODULES = {"datasets", "display", "metrics", "nn", "utils"}
# Public names whose docstrings (in files owned by other parts of the code base) have no
# Examples section yet; SIMULATORS is a dict, documented in docs/api.rst.
NO_EXAMPLE_YET = {"SIMULATORS"}  # a dict, documented as data


def _public_names():
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            if modname == "skphys" and name in SUBMODULES:
                continue
            yield modname, name


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_all_lists_resolve_and_are_unique(modname):
    module = importlib.import_module(modname)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{modname}.{name}"
    assert set(module.__all__) <= set(dir(module))


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "api.rst").read_text()
    missing = [f"{m}.{n}" for m, n in _public_names() if not re.search(rf"^\s+{n}$|^\.\. data:: {n}$", api, re.M)]
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_every_public_name_has_a_runnable_example():
    lacking = set()
    for modname, name in _public_names():
        doc = getattr(importlib.import_module(modname), name).__doc__ or ""
        if "Examples\n" not in doc or ">>>" not in doc:
            lacking.add(name)
    assert lacking <= NO_EXAMPLE_YET, f"public names without a doctested example: {sorted(lacking - NO_EXAMPLE_YET)}"


def test_top_level_reexports_are_the_same_objects():
    from skphys._features import SpectralStatsFeatures
    from skphys.display import LatentStatisticsDisplay

    assert skphys.SpectralStatsFeatures is SpectralStatsFeatures
    assert skphys.LatentStatisticsDisplay is LatentStatisticsDisplay
    assert skphys.display is importlib.import_module("skphys.display")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skphys.nope  # noqa: B018


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "docs" / "gallery").glob("*.py")),
                         ids=lambda p: p.name)
def test_examples_use_only_public_names_and_the_shared_writers(path):
    text = path.read_text()
    private = re.findall(r"(?:from|import)\s+(skphys(?:\.\w+)*\._\w+)", text)
    assert not private, f"{path.name} imports private modules {private}"
    assert not re.search(r"\bdef _?atomic", text), f"{path.name} defines its own atomic writer; use skphys.utils"
    assert "os.replace" not in text and "mkstemp" not in text, f"{path.name}: use skphys.utils for atomic writes"
