"""The root of every user-facing error: one line naming the file, key, expected and actual value,
and the settings involved by their library names (each front end spells them its own way)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def printable(text: object) -> str:
    """`text` as one printable line: control characters (a newline in a file name, a terminal
    escape in a CSV value) and bytes that are not UTF-8 (surrogate-escaped file names) are written
    as escapes, so a message stays one line and can always be encoded."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or 0xD800 <= code <= 0xDFFF:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                       if code < 0xD800 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def describe(message: str, *, file: Any = None, key: Any = None, expected: Any = None, actual: Any = None) -> str:
    """`FILE, key 'KEY': MESSAGE (expected E, got A)` with the parts that are known."""
    parts = []
    if file is not None:
        parts.append(printable(file))
    if key is not None:
        parts.append(f"key '{printable(key)}'")
    head = ": ".join([", ".join(parts), message]) if parts else message
    if expected is not None and actual is not None:
        head += f" (expected {expected}, got {actual})"
    elif expected is not None:
        head += f" (expected {expected})"
    elif actual is not None:
        head += f" (got {actual})"
    return head


def literal(text: object) -> str:
    """`text` made safe to put inside a message that names settings (its braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


def setting_name(name: str) -> str:
    """How the library spells a setting in messages: its Python name."""
    return name


class CmgError(Exception):
    """Base of every error reported to a user as one line (the CLI exits with code 1).

    `file`, `key`, `expected` and `actual` are kept as attributes and written into the message.
    `settings` names the options a message is about: the message then holds one `{}` per name,
    `str()` fills them with the Python names (`max_num`) and `render(name_of)` with another
    spelling, which is how the command line says `--max-num` without the library knowing flags.
    """

    def __init__(
        self, message: str = "", *, file: Any = None, key: Any = None, expected: Any = None,
        actual: Any = None, settings: Sequence[str] = (),
    ):
        self.message, self.settings = message, tuple(settings)
        self.file, self.key, self.expected, self.actual = file, key, expected, actual
        super().__init__(self.render(setting_name))

    def render(self, name_of: Callable[[str], str]) -> str:
        message = self.message.format(*(name_of(s) for s in self.settings)) if self.settings else self.message
        return describe(message, file=self.file, key=self.key, expected=self.expected, actual=self.actual)


class SettingsError(CmgError):
    """Settings that cannot be used as given, alone or together (a usage error: exit code 2)."""


class OutputError(CmgError):
    """An output that cannot be written where it was asked for."""


class OutputExistsError(OutputError):
    """An output exists and overwriting was not requested."""
