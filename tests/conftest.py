"""Shared pytest fixtures: paths to the reference-parity fixtures (tests/fixtures/, in the
repository) and small checkpoints; and the CI rule that a skipped test is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = FIXTURES / "cmg-reference"


def reference_file(name: str) -> Path:
    """A file of tests/fixtures/cmg-reference. The fixtures ship with the repository, so a missing
    one is an error, never a skip: a parity test that cannot run must not pass silently."""
    path = REFERENCE / name
    if not path.is_file():
        raise FileNotFoundError(f"reference fixture {path} is missing (it ships with the repository)")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        raise FileNotFoundError(f"reference fixtures folder {REFERENCE} is missing (it ships with the repository)")
    return REFERENCE


@pytest.fixture(scope="session")
def dcid_small_path() -> Path:
    return reference_file("dcid_small.pt")


@pytest.fixture(scope="session")
def hdcid_small_path() -> Path:
    return reference_file("hdcid_small.pt")


def load_reference(name: str):
    return torch.load(reference_file(name), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------- skips in CI
# In CI (CI=true) every capability a CPU machine has must be tested: a skip there means a test
# silently stopped running (a missing extra, program or fixture). Only tests marked `cuda` may skip.


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _as_ci_failure(report, where: str) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"{where} skipped in CI ({_skip_reason(report.longrepr)}): only tests marked `cuda` may skip "
        "there; install what it needs in .ci/setup"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _in_ci() and item.get_closest_marker("cuda") is None:
        _as_ci_failure(report, "test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module that skips itself at import (pytest.skip(allow_module_level=True), importorskip)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci():
        _as_ci_failure(report, "module")
