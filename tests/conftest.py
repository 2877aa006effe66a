"""Shared pytest fixtures: paths to the reference-parity fixtures and small checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "cmg-reference"


def reference_file(name: str) -> Path:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference fixture {path} is not available", allow_module_level=True)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.exists():
        pytest.skip(f"reference fixtures not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def dcid_small_path() -> Path:
    return reference_file("dcid_small.pt")


@pytest.fixture(scope="session")
def hdcid_small_path() -> Path:
    return reference_file("hdcid_small.pt")


def load_reference(name: str):
    return torch.load(reference_file(name), map_location="cpu", weights_only=True)
