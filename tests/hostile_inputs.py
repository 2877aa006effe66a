"""Running `toc` on hostile inputs (toc.testing.hostile builds them) and checking that it fails
with one clear line: in a subprocess (signals, rlimits, peak RSS) or through Click's runner."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli

# ------------------------------------------------------------------------------ running `toc`

ROOT = Path(__file__).resolve().parents[1]


def run_toc(*args, timeout: float = 120, limits: str = "", cwd: Path | None = None):
    """`toc ARGS` in a subprocess (a real process: signals, rlimits, peak RSS); `limits` is a
    shell prefix such as 'ulimit -f 8;'. Returns the CompletedProcess."""
    import shlex
    import subprocess
    import sys

    command = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "cli", *args])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-c", f"{limits} exec {command}"], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_error_line(stderr: str) -> str:
    """The single `Error:` line of a failed command (asserting there is exactly one, at the end)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr and "unexpected" not in errors[0], stderr
    return errors[0]


class no_hang:  # noqa: N801 - used as a context manager
    """Fail (instead of blocking forever) if the block takes longer than `seconds`."""

    def __init__(self, seconds: int = 20):
        self.seconds = seconds

    def __enter__(self):
        import signal

        def expired(*_):
            raise TimeoutError(f"blocked for more than {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


# ------------------------------------------------------------------------------ in-process `toc`


def invoke(*args):
    """`toc ARGS` through Click's test runner (in this process)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result) -> str:
    """The one `Error:` line, last on stderr, of a command that failed with exit code 1 or 2."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.exit_code in (1, 2) and lines and lines[-1].startswith("Error:"), result.output
    assert sum(line.startswith("Error:") for line in lines) == 1 and "Traceback" not in result.output
    return lines[-1]
