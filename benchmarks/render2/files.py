"""Write a render2 set to a folder: image (PNG, or the JPEG bytes), circles CSV, manifest.json."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .render import Rendered, image_seed, render


def _atomic_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def circles_csv(circles: np.ndarray) -> str:
    return "x,y,r\n" + "".join(f"{x:.4f},{y:.4f},{r:.4f}\n" for x, y, r in circles)


def write_one(out: Path, stem: str, item: Rendered) -> Path:
    """Write ``stem.png`` or ``stem.jpg`` and ``stem.csv``; returns the image path."""
    import io as _io  # the standard library

    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    if item.jpeg is not None:
        path = out / f"{stem}.jpg"
        _atomic_bytes(path, item.jpeg)
    else:
        path = out / f"{stem}.png"
        buf = _io.BytesIO()
        Image.fromarray(item.image).save(buf, format="PNG")
        _atomic_bytes(path, buf.getvalue())
    _atomic_bytes(out / f"{stem}.csv", circles_csv(item.circles).encode())
    return path


def write_set(out: Path, styles: list[str], n: int, shape: tuple[int, int]) -> list[dict]:
    """``n`` images per style with the documented held-out seeds; returns the manifest rows."""
    rows = []
    for style in styles:
        for k in range(n):
            item = render(style, image_seed(style, k), shape)
            path = write_one(out, f"{style}_{k:03d}", item)
            rows.append({**item.meta, "image": path.name, "circles": f"{style}_{k:03d}.csv"})
    _atomic_bytes(out / "manifest.json", (json.dumps(rows, indent=1) + "\n").encode())
    return rows


def read_circles(path: Path) -> np.ndarray:
    a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return a.reshape(-1, 3)
