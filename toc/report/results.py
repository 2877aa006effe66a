"""Reading results: `toc eval` / `toc compare` JSON lines (and codebook-health lines) → a ResultSet."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cmg_base.errors import printable
from cmg_base.inputs import decode_utf8, read_input_bytes
from toc.documents import parse_json
from toc.errors import DataError
from toc.eval.records import ResultRecord

# Results of a large comparison are a few MB; this bound only keeps a wrong file from filling memory.
MAX_RESULTS_BYTES = 256 << 20


@dataclass(frozen=True)
class HealthRecord:
    """Codebook health of one trained model (a `"kind": "health"` line); fields kept as given."""

    fields: dict[str, Any]
    source: str

    @property
    def sort_key(self) -> tuple:
        f = self.fields
        return (
            str(f.get("family", "")),
            str(f.get("checkpoint_sha256", "")),
            str(f.get("checkpoint", "")),
            _level_key(f.get("level")),
            canonical(f),
        )


@dataclass(frozen=True)
class InputFile:
    name: str  # base name only: the report must not depend on where the file lies
    sha256: str
    n_results: int
    n_health: int


@dataclass
class ResultSet:
    records: list[ResultRecord] = field(default_factory=list)
    health: list[HealthRecord] = field(default_factory=list)
    inputs: list[InputFile] = field(default_factory=list)
    _seen: dict[tuple, str] = field(default_factory=dict, repr=False)

    def add(self, record: ResultRecord | HealthRecord) -> None:
        """Add one line; a second result for the same (task, direction, variant, head,
        protocol, pretraining run, split seed, seed) is an error naming both places."""
        if isinstance(record, HealthRecord):
            self.health.append(record)
            return
        if record.key in self._seen:
            run = "".join(
                f" {name}={value}"
                for name, value in (("pretrain_run", record.pretrain_run), ("split_seed", record.split_seed))
                if value is not None
            )
            raise DataError(
                f"duplicate result for task={record.task} direction={record.direction} "
                f"variant={record.variant} head={record.head} protocol={record.protocol}{run} "
                f"seed={record.seed} (first at {self._seen[record.key]})",
                file=record.source or None,
            )
        self._seen[record.key] = record.source
        self.records.append(record)


def dumps_results(records: Iterable[ResultRecord | HealthRecord]) -> str:
    """Results JSONL: one object per line, sorted keys, so reruns give identical bytes."""
    lines = []
    for r in records:
        line = {"kind": "health", **r.fields} if isinstance(r, HealthRecord) else r.to_json()
        lines.append(json.dumps(line, sort_keys=True, allow_nan=False) + "\n")
    return "".join(lines)


def in_memory_results(name: str, records: Sequence[ResultRecord | HealthRecord]) -> tuple[ResultSet, str]:
    """The ResultSet of records made in this run and the JSONL text they are saved as (`name`
    is the file name the report lists): the same set `read_results` gives for that file."""
    text = dumps_results(records)
    result = ResultSet()
    for number, record in enumerate(records, start=1):
        where = f"{name}:{number}"
        result.add(replace(record, source=where))
    _check_not_empty(result, name)
    result.inputs.append(InputFile(
        name=Path(name).name, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        n_results=len(result.records), n_health=len(result.health),
    ))
    return result, text


def _check_not_empty(result: ResultSet, where: str | None) -> None:
    if not result.records:
        raise DataError("no result lines in the input", file=where or None)



def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _level_key(level: Any) -> tuple[int, str]:
    if isinstance(level, int) and not isinstance(level, bool):
        return (level, "")
    return (1 << 30, "" if level is None else str(level))


def order_key(value: str, order: Sequence[str]) -> tuple[int, str]:
    """Sort key: `value`'s place in `order`, unknown values after them, alphabetically."""
    return (order.index(value), "") if value in order else (len(order), value)


def parse_line(obj: Any, where: str) -> ResultRecord | HealthRecord:
    """A result line (kind "result", the default) or a codebook-health line (kind "health")."""
    kind = obj.get("kind", "result") if isinstance(obj, dict) else "result"
    if kind == "health":
        return HealthRecord(fields={k: v for k, v in obj.items() if k != "kind"}, source=where)
    if kind != "result":
        raise DataError("unknown record kind", file=where, key="kind", expected="'result' or 'health'", actual=repr(kind)[:60])
    return ResultRecord.from_json(obj, where)



def read_results(paths: Iterable[str | os.PathLike]) -> ResultSet:
    """Read results JSONL files (blank lines skipped); a bad line is a one-line DataError file:line."""
    result = ResultSet()
    for raw_path in paths:
        path = Path(raw_path)
        data = read_input_bytes(path, what="results file", error=DataError, max_bytes=MAX_RESULTS_BYTES,
                                allow_empty=True, missing="results file not found")
        text = decode_utf8(data, path=path, what="results file (JSON lines)", error=DataError)
        n_results = n_health = 0
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            obj = parse_json(line, file=where, what="result line (one JSON object)")
            record = parse_line(obj, where)
            result.add(record)
            if isinstance(record, HealthRecord):
                n_health += 1
            else:
                n_results += 1
        result.inputs.append(
            InputFile(name=printable(path.name), sha256=hashlib.sha256(data).hexdigest(), n_results=n_results, n_health=n_health)
        )
    _check_not_empty(result, ", ".join(str(p) for p in paths))
    return result
