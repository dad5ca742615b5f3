#!/usr/bin/env python3
"""Open every Parquet file of a steerbench run directory with polars, pandas
and pyarrow, and check each against its stage's manifest.json (row count and
column names). Usage: check_parquet.py RUN_DIR [RUN_DIR ...]. Exit 1 on any
mismatch or unreadable file, 2 when no Parquet file was found."""

import json
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq


def check_stage(stage_dir: Path) -> tuple[int, list[str]]:
    manifest = json.loads((stage_dir / "manifest.json").read_text())
    problems, n = [], 0
    for out in manifest["outputs"]:
        if not out["path"].endswith(".parquet"):
            continue
        path = stage_dir / out["path"]
        n += 1
        try:
            frames = {
                "polars": (pl.read_parquet(path).height, pl.read_parquet(path).columns),
                "pandas": (len(pd.read_parquet(path)), list(pd.read_parquet(path).columns)),
                "pyarrow": (pq.read_table(path).num_rows, pq.read_table(path).column_names),
            }
        except Exception as e:  # report every unreadable file, not just the first
            problems.append(f"{path}: cannot read: {e}")
            continue
        for lib, (rows, cols) in frames.items():
            if rows != out["rows"]:
                problems.append(f"{path}: {lib} reads {rows} rows, manifest says {out['rows']}")
            if cols != out["columns"]:
                problems.append(f"{path}: {lib} reads columns {cols}, manifest says {out['columns']}")
    return n, problems


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    total, problems = 0, []
    for run_dir in map(Path, argv[1:]):
        for manifest in sorted(run_dir.glob("*/*/manifest.json")):
            n, p = check_stage(manifest.parent)
            total += n
            problems += p
    for p in problems:
        print(p, file=sys.stderr)
    if total == 0:
        print("no Parquet files found", file=sys.stderr)
        return 2
    print(f"{total} Parquet file(s) checked with polars, pandas and pyarrow; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
