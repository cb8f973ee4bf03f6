"""Dead letters out of the store: JSON Lines for tools, a DataFrame for notebooks.

The DataFrame follows :mod:`harness.scenario._history`: a fixed, explicit column list, so an empty
queue still has the right columns and a saved Parquet file always has the same schema. Payload and
tags are kept as JSON text there (one column each, any shape); the JSON Lines export nests them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from harness.stores._model import DeadLetter

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEAD_LETTER_COLUMNS", "dead_letters_frame", "write_jsonl"]

DEAD_LETTER_COLUMNS: list[str] = [
    "id",
    "seq",
    "operation_id",
    "operation",
    "provider",
    "status",
    "error_class",
    "error_message",
    "error_status",
    "attempts",
    "first_attempt_at",
    "last_attempt_at",
    "parked_at",
    "updated_at",
    "resolved_at",
    "tags",
    "payload",
]


def _row(entry: DeadLetter) -> dict[str, Any]:
    return {
        "id": entry.id,
        "seq": entry.seq,
        "operation_id": entry.operation_id,
        "operation": entry.operation,
        "provider": entry.provider,
        "status": str(entry.status),
        "error_class": entry.error.error_class,
        "error_message": entry.error.message,
        "error_status": entry.error.status,
        "attempts": entry.attempts,
        "first_attempt_at": entry.first_attempt_at,
        "last_attempt_at": entry.last_attempt_at,
        "parked_at": entry.parked_at,
        "updated_at": entry.updated_at,
        "resolved_at": entry.resolved_at,
        "tags": json.dumps(dict(entry.tags), sort_keys=True),
        "payload": entry.payload_json,
    }


def dead_letters_frame(entries: Iterable[DeadLetter]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([_row(e) for e in entries], columns=DEAD_LETTER_COLUMNS)
    # A nullable integer keeps "no status" apart from a status, instead of turning the column to float.
    frame["error_status"] = frame["error_status"].astype("Int64")
    return frame


def write_jsonl(entries: Iterable[DeadLetter], destination: Path | str | TextIO) -> int:
    """One JSON object per line; a path is written to a temporary file and renamed into place."""
    lines = [json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for e in entries]
    if not isinstance(destination, Path | str):
        destination.writelines(lines)
        return len(lines)
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)
