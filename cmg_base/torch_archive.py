"""What a torch checkpoint file must be before torch reads it: the zip archive `torch.save` writes.

torch's own reader neither checks the records' CRC-32 (a flipped byte inside a tensor loads as a
silently different weight) nor refuses compressed records (a 1.5 MB deflated record inflates to
gigabytes in memory). So before `torch.load`, the archive is checked here:

- every record is stored uncompressed, as `torch.save` writes them, and the records together
  are no larger than the file;
- no record name appears twice (two readers could pick different ones);
- every record's CRC-32 matches its bytes (read in blocks; the file is in the page cache for
  torch's own read just after).

Files that are not zip archives (the legacy torch format) are left to torch's reader.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from cmg_base.errors import CmgError
from cmg_base.inputs import open_regular_file

_BLOCK = 1 << 20


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def check_torch_archive(path: str | Path, *, error: type[CmgError] = CmgError) -> bool:
    """Refuse a torch zip archive with compressed, duplicated or corrupt records; returns whether
    `path` is a zip archive at all (False: a legacy-format file, left to torch). Errors are of
    type `error` (the caller's own checkpoint error)."""
    path = Path(path)
    with open_regular_file(path, what="checkpoint", error=error, missing="file not found") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        if not zipfile.is_zipfile(handle):
            return False
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except Exception as exc:  # a damaged central directory
            raise error(f"not a readable torch checkpoint (truncated or corrupt?): {_first_line(exc)}", file=path) from None
        with archive:
            infos = archive.infolist()
            seen: set[str] = set()
            total = 0
            for info in infos:
                if info.filename in seen:
                    raise error("corrupt checkpoint: a record name appears twice", file=path, key=info.filename)
                seen.add(info.filename)
                if info.compress_type != zipfile.ZIP_STORED:
                    raise error(
                        "checkpoint record is compressed; torch.save stores records uncompressed, so this "
                        "file was not written by torch (refused: a compressed record can inflate without bound)",
                        file=path, key=info.filename, expected="stored (method 0)", actual=f"method {info.compress_type}",
                    )
                total += info.file_size
            if total > size:
                raise error(
                    "corrupt checkpoint: its records declare more bytes than the file holds", file=path,
                    expected=f"at most {size:,} bytes", actual=f"{total:,} bytes",
                )
            for info in infos:
                try:
                    with archive.open(info) as record:
                        while record.read(_BLOCK):
                            pass
                except zipfile.BadZipFile as exc:
                    reason = "its CRC-32 does not match (the file is corrupt)" if "CRC" in str(exc) else _first_line(exc)
                    raise error(f"corrupt checkpoint record: {reason}", file=path, key=info.filename) from None
                except Exception as exc:  # truncated data, bad local headers
                    raise error(
                        f"not a readable torch checkpoint (truncated or corrupt?): {_first_line(exc)}",
                        file=path, key=info.filename,
                    ) from None
    return True
