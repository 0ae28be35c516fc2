"""Merge several `srpsa prepare` folders into one (for data prepared in parallel shards).

    python scripts/merge_prepared.py DEST SRC1 SRC2 ...

Patch files are moved (same file system) into DEST/<split>/, the `patches.csv` rows are concatenated and
`split.json` lists every shard's images. Stems must be unique across the shards (`srpsa synth --start`
gives each shard its own indices). Used by scripts/gpu_train_gans.sh, where one `srpsa prepare` process
per CPU core cuts the pairs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

from srpsa.io.atomic import atomic_write_text

INDEX, SPLITS = "patches.csv", ("train", "val", "test")


def merge(dest: Path, sources: list[Path]) -> int:
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for src in sources:
        with open(src / INDEX, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if header is not None and reader.fieldnames != header:
                raise SystemExit(f"error: {src / INDEX}: columns differ from the first shard's")
            header = list(reader.fieldnames or [])
            shard = list(reader)
        for row in shard:
            for col in ("om_file", "sem_file"):
                target = dest / row[col]
                if target.exists():
                    raise SystemExit(f"error: {row[col]} exists in two shards; give each shard its own stems")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src / row[col]), target)
        rows += shard
        meta = json.loads((src / "split.json").read_text(encoding="utf-8"))
        for s in SPLITS:
            split[s] += meta.get(s, [])
    if header is None:
        raise SystemExit("error: no shards given")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(dest / INDEX, buf.getvalue())
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    atomic_write_text(dest / "split.json", json.dumps({**split, "patches": counts, "shards": [str(p) for p in sources]}, indent=2) + "\n")
    return len(rows)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    n = merge(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
    print(f"merged {n} patch pairs into {sys.argv[1]}")
