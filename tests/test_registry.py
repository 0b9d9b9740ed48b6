"""The one registry type behind datasets, models, unsupervised methods and face detectors."""

from __future__ import annotations

import sys
import textwrap

import pytest

from lqrppg.datasets import DATASETS
from lqrppg.errors import ConfigError
from lqrppg.models import MODELS
from lqrppg.preprocess.face import DETECTORS
from lqrppg.registry import Registry
from lqrppg.unsupervised import METHODS


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A package ``plugins_x`` whose modules register into ``plugins_x.REG`` (a new file = a new entry)."""
    pkg = tmp_path / "plugins_x"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from lqrppg.registry import Registry
        REG = Registry("widget", __name__, skip=("helpers",))
    """))
    for name in ("alpha", "beta"):
        (pkg / f"{name}.py").write_text(f"from plugins_x import REG\n@REG.register({name!r})\nclass W: pass\n")
    (pkg / "helpers.py").write_text("raise RuntimeError('skipped modules are never imported')\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for mod in [m for m in sys.modules if m == "plugins_x" or m.startswith("plugins_x.")]:
        del sys.modules[mod]


def test_entries_are_discovered_from_the_package_modules_on_first_lookup(plugin_package):
    import plugins_x

    assert "plugins_x.alpha" not in sys.modules  # nothing imported before a lookup
    assert plugins_x.REG.names() == ["alpha", "beta"]
    assert plugins_x.REG.get("beta").__module__ == "plugins_x.beta"
    assert "alpha" in plugins_x.REG and "gamma" not in plugins_x.REG


def test_a_new_file_is_a_new_entry(plugin_package):
    (plugin_package / "gamma.py").write_text("from plugins_x import REG\n@REG.register('gamma')\nclass W: pass\n")
    import plugins_x

    assert plugins_x.REG.names() == ["alpha", "beta", "gamma"]


def test_unknown_name_is_a_config_error_listing_the_known_ones(plugin_package):
    import plugins_x

    with pytest.raises(ConfigError, match=r"unknown widget 'delta'; known widgets: alpha, beta"):
        plugins_x.REG.get("delta")


def test_registering_a_different_entry_twice_is_an_error():
    reg = Registry("thing", "lqrppg.registry_missing_package")

    class A: ...

    reg.register("a")(A)
    reg.register("a")(A)  # the same object again (a module imported twice) is fine
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        reg.register("a")(type("B", (), {}))


def test_on_register_rejects_bad_entries_before_they_are_listed():
    def upper_only(name, entry):
        if name != name.upper():
            raise ValueError("names are upper-case")

    reg = Registry("thing", "lqrppg", prefix="no_such_prefix_", on_register=upper_only)
    with pytest.raises(ValueError, match="upper-case"):
        reg.register("lower")(object)
    assert reg.names() == []


def test_the_four_registries_of_the_package():
    assert {"ubfc-rppg", "pure"} <= set(DATASETS.names())
    assert {"lqrppg", "physnet"} <= set(MODELS.names())
    assert {"POS", "CHROM", "GREEN"} <= set(METHODS.names())
    assert "haar" in DETECTORS.names()
    assert MODELS.get("lqrppg").name == "lqrppg"  # on_register names the class
    assert DATASETS.get("pure").name == "pure"
