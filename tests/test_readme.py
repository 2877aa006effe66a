"""README's Python example runs (on the reference fixture checkpoint instead of the released one)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(dcid_small_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        code = block.replace('"nips2023_AVT_vgg40k_size400.pt"', repr(str(dcid_small_path)))
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        if "codes" in namespace:
            assert tuple(namespace["codes"].shape) == (1, 10)
