"""The results file of a sweep, rewritten atomically after each setting so that a rerun resumes.

``compression_results.json`` is one JSON object (see docs/results-schema.md)
with the run's configuration, its provenance, the baselines and one record
per codec setting. ``ResultsFile`` writes the whole object to a temporary
file and renames it over the old one, so an interrupted sweep leaves a
complete file with every setting finished so far. A rerun with the same
``--out`` loads that file and skips the settings it contains, provided that
the run key matches. The run key is a hash of every option that changes a
figure except the grid of settings, so a rerun may also add modes, keep
ratios, block sizes or bit depths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from codec import MODES

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULTS_NAME = "compression_results.json"


class ResultsConflictError(RuntimeError):
    """An output folder that contains results of another configuration."""


def setting_key(mode: str, keep_ratio: float, block_size: int, bits: int) -> str:
    """Return the key that names one codec setting in the results file, such as ``global/keep=0.1/block=4/bits=2``."""
    return f"{mode}/keep={keep_ratio:g}/block={block_size}/bits={bits}"


def run_key(keyed_config: dict[str, Any]) -> str:
    """Return the SHA-256 hex digest of the canonical JSON form of ``keyed_config``."""
    text = json.dumps(keyed_config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_order(record: dict[str, Any]) -> tuple:
    """Return the sort key of a record: mode, block size, bits, then keep ratio from high to low."""
    mode_rank = MODES.index(record["mode"]) if record["mode"] in MODES else len(MODES)
    return mode_rank, record["block_size"], record["bits"], -record["keep_ratio"]


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to a temporary file beside ``path``, flush it to disk and rename it over ``path``."""
    temporary = path.with_name(path.name + ".tmp")
    text = json.dumps(document, indent=2, allow_nan=False)
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class ResultsFile:
    """The results document of one output folder, kept in memory and on disk."""

    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self.document = document

    @classmethod
    def open(
        cls,
        out_dir: Path,
        key: str,
        config: dict[str, Any],
        provenance: dict[str, Any],
        fresh: bool = False,
    ) -> "ResultsFile":
        """Load the results of an earlier run with the same key from ``out_dir``, or start a new document.

        Raises ``ResultsConflictError`` when the folder contains results of
        another configuration, unless ``fresh`` discards them.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / RESULTS_NAME
        new_document = {
            "schema_version": SCHEMA_VERSION,
            "run_key": key,
            "config": config,
            "provenance": provenance,
            "baselines": None,
            "records": [],
        }
        if fresh or not path.exists():
            return cls(path, new_document)

        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ResultsConflictError(
                f"cannot read the earlier results {path}: {error}; delete the file or pass --fresh to start over"
            ) from error
        if old.get("schema_version") != SCHEMA_VERSION or old.get("run_key") != key:
            raise ResultsConflictError(
                f"{path} contains results of another configuration (run key {str(old.get('run_key'))[:12]}, "
                f"this run {key[:12]}); pass another --out, or --fresh to discard them"
            )

        # The grid may differ between runs, so the new configuration replaces
        # the old one, while records, baselines and the first start time stay.
        new_document["records"] = old.get("records", [])
        new_document["baselines"] = old.get("baselines")
        first_start = (old.get("provenance") or {}).get("started_at", provenance["started_at"])
        new_document["provenance"] = {**provenance, "started_at": first_start, "resumed_at": provenance["started_at"]}
        _LOGGER.info("resuming %s: %d settings already measured", path, len(new_document["records"]))
        return cls(path, new_document)

    @property
    def keys(self) -> set[str]:
        """Keys of the settings already measured."""
        return {record["key"] for record in self.document["records"]}

    @property
    def baselines(self) -> dict[str, Any] | None:
        """Baseline figures, or None before they are measured."""
        return self.document["baselines"]

    def set_baselines(self, baselines: dict[str, Any]) -> None:
        """Store the baselines and write the file."""
        self.document["baselines"] = baselines
        self.save()

    def add(self, record: dict[str, Any]) -> None:
        """Add or replace the record of one setting and write the file."""
        records = [old for old in self.document["records"] if old["key"] != record["key"]]
        records.append(record)
        self.document["records"] = sorted(records, key=record_order)
        self.save()

    def save(self) -> None:
        """Write the document atomically."""
        write_json_atomically(self.path, self.document)
