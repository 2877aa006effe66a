"""Moved modules keep importing under their old names: lazily, as the same module object."""

from __future__ import annotations

import importlib
import sys

import pytest

from cmg_base.aliases import install_aliases, installed_aliases


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throw-away package `aliastest_pkg` with a module `new` (and `new.part`) that counts imports."""
    root = tmp_path / "aliastest_pkg"
    (root / "new").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "new" / "__init__.py").write_text(
        "import builtins\nbuiltins.aliastest_loads = getattr(builtins, 'aliastest_loads', 0) + 1\nVALUE = 42\n"
    )
    (root / "new" / "part.py").write_text("PART = 'part'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "aliastest_pkg"
    for name in [m for m in sys.modules if m.startswith("aliastest_pkg")]:
        del sys.modules[name]
    import builtins

    builtins.__dict__.pop("aliastest_loads", None)


def test_old_name_imports_the_new_module_lazily_and_as_the_same_object(package):
    import builtins

    install_aliases({f"{package}.old": f"{package}.new"})
    assert f"{package}.new" not in sys.modules  # installing imports nothing
    assert getattr(builtins, "aliastest_loads", 0) == 0
    old = importlib.import_module(f"{package}.old")
    new = importlib.import_module(f"{package}.new")
    assert old is new and sys.modules[f"{package}.old"] is new
    assert new.__name__ == f"{package}.new" and new.__spec__.name == f"{package}.new"
    assert builtins.aliastest_loads == 1  # one module, executed once
    from aliastest_pkg.old import VALUE

    assert VALUE == 42


def test_submodules_of_an_old_name_are_the_new_submodules(package):
    install_aliases({f"{package}.old": f"{package}.new"})
    old_part = importlib.import_module(f"{package}.old.part")
    assert old_part is importlib.import_module(f"{package}.new.part")


def test_installing_is_idempotent_and_refuses_a_conflicting_target(package):
    install_aliases({f"{package}.old": f"{package}.new"})
    install_aliases({f"{package}.old": f"{package}.new"})
    assert installed_aliases()[f"{package}.old"] == f"{package}.new"
    with pytest.raises(ValueError, match="already an alias"):
        install_aliases({f"{package}.old": f"{package}.other"})
    with pytest.raises(ValueError, match="into itself"):
        install_aliases({f"{package}.x": f"{package}.x.y"})


def test_unaliased_missing_modules_still_fail(package):
    install_aliases({f"{package}.old": f"{package}.new"})
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{package}.older")


def test_hdcid_train_is_the_training_package():
    import hdcid.train
    import hdcid.training

    assert hdcid.train is hdcid.training
    from hdcid.train import Trainer

    assert Trainer is hdcid.training.Trainer
    import cmg_base.files
    import hdcid.files

    assert hdcid.files is cmg_base.files
