"""YOLO baseline for the detection benchmark, trained from scratch on srpsa's simulator data, offline, on CPU.

Runs ONLY in its own environment .venv-yolo (``make bench-yolo`` builds it): ultralytics is AGPL-3.0, so
srpsa never imports it; this script is a separate tool that imports srpsa (the simulator, the
evaluation), never the other way round. See docs/yolo.md.

    .venv-yolo/bin/python benchmarks/yolo_baseline.py data    --out runs/yolo/data --n-train 200 --n-val 8
    .venv-yolo/bin/python benchmarks/yolo_baseline.py train   --data runs/yolo/data --out runs/yolo/v5nu --epochs 20
    .venv-yolo/bin/python benchmarks/yolo_baseline.py tune    --weights runs/yolo/v5nu/run/weights/last.pt --data runs/yolo/data
    .venv-yolo/bin/python benchmarks/yolo_baseline.py predict --weights runs/yolo/v5nu/run/weights/last.pt --images DIR_OR_FILES --out DIR
    .venv-yolo/bin/python benchmarks/yolo_baseline.py check   --weights runs/yolo/v5nu/run/weights/last.pt --out runs/yolo/check

Subcommands:

- ``data``: OM-domain images of srpsa's preset ``train`` made exactly as the shipped OM detector's were
  (:func:`srpsa.training.detector_data.synth_sample`; train seeds 0..N-1, val seeds 1_000_000..), written as
  8-bit PNG + YOLO labels (class 0, box = the circle's bounding square clipped to the image, normalised),
  the val circles as srpsa CSV, and ``data.yaml``.
- ``train``: ultralytics YOLO from a model YAML (no pretrained weights), fully offline, then ``tune``.
- ``tune``: the confidence threshold with the best F1 on the val images (srpsa's one-to-one matching,
  border-cut particles ignored as in benchmarks/detection.py), stored in ``<train out>/yolo_conf.json``.
- ``predict``: ``<stem>.csv`` (``x_px,y_px,r_px,score``, srpsa pixel-centre coordinates) per image. Boxes
  become circles with centre = box centre and r = (w + h) / 4. Images are run at their native resolution
  (imgsz = image size rounded up to 32, letterboxed, never shrunk), or in tiles with ``--tile``.
- ``check``: the quick test of docs/yolo.md: test images of each benchmark preset made by
  benchmarks/detection.py's ``make_image`` (seeds 900000+), predicted and scored like detection.py does.

Coordinates: srpsa puts pixel centres at integers; ultralytics boxes are corner-origin (pixel j covers
[j, j + 1]), so 0.5 is added when writing labels and subtracted from predicted box centres.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HALF_PIXEL = 0.5  # srpsa pixel-centre coordinates -> corner-origin coordinates
TRAIN_PRESET, DOMAIN = "train", "om"
VAL_SEED0 = 1_000_000
CONF_FILE = "yolo_conf.json"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
DEFAULT_MAX_DET = 3000  # dense images hold up to ~1000 particles


# ------------------------------------------------------------------------------------------ offline
def offline_env(config_dir: Path, threads: int) -> None:
    """Settings under which ultralytics makes no network attempt (shared/notes/yolo-offline.md).

    Must run before ultralytics (and torch) are imported.
    """
    config_dir = Path(config_dir).resolve()
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["YOLO_VERBOSE"] = os.environ.get("YOLO_VERBOSE", "True")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))
    # Dataset checks look for Arial.ttf in the config dir and otherwise try to download it.
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def import_yolo(threads: int):
    """Import ultralytics (after :func:`offline_env`) with sync off and ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    import ultralytics
    from ultralytics import YOLO, settings
    from ultralytics.utils import torch_utils

    settings.update({"sync": False})
    torch_utils.NUM_THREADS = threads  # select_device() resets torch's threads to this
    return YOLO, ultralytics.__version__


# ------------------------------------------------------------------------------------------ images
def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit gray from a float image in [0, 1] (the simulator's range), or from 8/16-bit data."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.round(a / 257.0).astype(np.uint8)
    return np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def read_bgr(path: Path) -> np.ndarray:
    """An image file as 8-bit BGR (H, W, 3), what ultralytics takes as a numpy input."""
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise SystemExit(f"cannot read image {path}")
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype not in (np.uint8, np.uint16):
        a = a.astype(np.float32)
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)  # float data of unknown range: stretch
    a = to_uint8(a)
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(a)


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), to_uint8(image)):
        raise SystemExit(f"cannot write {path}")


def circles_to_yolo(circles: np.ndarray, shape: tuple[int, int], min_side: float = 2.0) -> np.ndarray:
    """YOLO rows (cls, xc, yc, w, h), normalised: each circle's bounding square clipped to the image.

    Circles whose clipped box is under ``min_side`` pixels on a side (almost wholly outside) are dropped.
    """
    h, w = shape
    if len(circles) == 0:
        return np.zeros((0, 5))
    x, y, r = circles[:, 0] + HALF_PIXEL, circles[:, 1] + HALF_PIXEL, circles[:, 2]
    x1, x2 = np.clip(x - r, 0, w), np.clip(x + r, 0, w)
    y1, y2 = np.clip(y - r, 0, h), np.clip(y + r, 0, h)
    keep = ((x2 - x1) >= min_side) & ((y2 - y1) >= min_side)
    x1, x2, y1, y2 = x1[keep], x2[keep], y1[keep], y2[keep]
    return np.stack([np.zeros(len(x1)), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], axis=1)


def boxes_to_circles(xyxy: np.ndarray) -> np.ndarray:
    """Corner-origin boxes (N, 4) -> srpsa circles (N, 3): centre = box centre, r = (w + h) / 4."""
    if len(xyxy) == 0:
        return np.zeros((0, 3))
    x1, y1, x2, y2 = xyxy.T
    return np.stack([(x1 + x2) / 2 - HALF_PIXEL, (y1 + y2) / 2 - HALF_PIXEL, ((x2 - x1) + (y2 - y1)) / 4], axis=1)


def ceil32(n: int) -> int:
    return int(-(-n // 32) * 32)


def list_images(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"--images: {p} does not exist")
    if not out:
        raise SystemExit("--images: no image files")
    return out


# ------------------------------------------------------------------------------------------ data
def cmd_data(args: argparse.Namespace) -> None:
    from srpsa.io.annotations import write_circles
    from srpsa.training.detector_data import synth_sample

    out = args.out.resolve()
    splits = {"train": range(args.seed, args.seed + args.n_train), "val": range(VAL_SEED0 + args.seed, VAL_SEED0 + args.seed + args.n_val)}
    t0 = time.time()
    counts = {}
    for split, seeds in splits.items():
        for sub in ("images", "labels", "circles"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
        n_obj = 0
        for seed in seeds:
            s = synth_sample(TRAIN_PRESET, DOMAIN, seed)
            stem = f"{TRAIN_PRESET}-{DOMAIN}-{seed:07d}"
            write_png(out / "images" / split / f"{stem}.png", s.image)
            rows = circles_to_yolo(s.circles, s.image.shape)
            n_obj += len(rows)
            (out / "labels" / split / f"{stem}.txt").write_text("".join(f"0 {a:.6f} {b:.6f} {c:.6f} {d:.6f}\n" for _, a, b, c, d in rows))
            write_circles(out / "circles" / split / f"{stem}.csv", s.circles)
        counts[split] = {"images": len(seeds), "boxes": n_obj, "seeds": [seeds.start, seeds.stop]}
        print(f"{split}: {len(seeds)} images, {n_obj} boxes", flush=True)
    (out / "data.yaml").write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n  0: particle\n")
    meta = {"preset": TRAIN_PRESET, "domain": DOMAIN, "splits": counts, "png": "8-bit gray, round(clip(image, 0, 1) * 255)",
            "label": "class 0, circle's bounding square clipped to the image, normalised; clipped boxes < 2 px dropped",
            "seconds": time.time() - t0}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out} in {meta['seconds']:.0f} s")


# ------------------------------------------------------------------------------------------ predict
def predict_arrays(model, images: list[np.ndarray], conf: float, tile: int = 0, overlap: int = 128,
                   iou: float = 0.7, max_det: int = DEFAULT_MAX_DET) -> list[np.ndarray]:
    """(N, 4) ``[x, y, r, score]`` per BGR image, srpsa coordinates.

    ``tile`` = 0 runs the whole image at its native size (imgsz = size rounded up to 32); otherwise
    tiles of ``tile`` px overlapping by at least ``overlap`` px, each detection kept by the one tile whose
    core holds its centre (cores split each overlap at its middle, so they partition the image; give an
    overlap of at least the largest particle diameter).
    """
    if tile > 0 and not 0 <= overlap < tile:
        raise SystemExit(f"--overlap must be in [0, tile), got {overlap} for tile {tile}")
    out = []
    for im in images:
        h, w = im.shape[:2]
        if tile <= 0 or (h <= tile and w <= tile):
            windows = [(0, 0, h, w)]
        else:
            step = tile - overlap
            ys = list(range(0, max(h - tile, 0) + 1, step)) or [0]
            xs = list(range(0, max(w - tile, 0) + 1, step)) or [0]
            if ys[-1] + tile < h:
                ys.append(h - tile)
            if xs[-1] + tile < w:
                xs.append(w - tile)
            windows = [(y0, x0, min(tile, h), min(tile, w)) for y0 in ys for x0 in xs]
            # Cores partition the image: neighbours split their overlap at its middle.
            cut_y = {a: ((ys[k - 1] + tile + a) / 2 if k else -np.inf, (a + tile + ys[k + 1]) / 2 if k + 1 < len(ys) else np.inf) for k, a in enumerate(ys)}
            cut_x = {a: ((xs[k - 1] + tile + a) / 2 if k else -np.inf, (a + tile + xs[k + 1]) / 2 if k + 1 < len(xs) else np.inf) for k, a in enumerate(xs)}
        parts = []
        for y0, x0, th, tw in windows:
            crop = np.ascontiguousarray(im[y0:y0 + th, x0:x0 + tw])
            res = model.predict(crop, imgsz=[ceil32(th), ceil32(tw)], conf=conf, iou=iou, max_det=max_det,
                                device="cpu", verbose=False)[0]
            b = res.boxes
            xyxy = b.xyxy.cpu().numpy().astype(np.float64)
            score = b.conf.cpu().numpy().astype(np.float64)
            c = boxes_to_circles(xyxy)
            c[:, 0] += x0
            c[:, 1] += y0
            if len(windows) > 1:  # keep what lies in this window's core
                (lo_y, hi_y), (lo_x, hi_x) = cut_y[y0], cut_x[x0]
                cx, cy = c[:, 0] + HALF_PIXEL, c[:, 1] + HALF_PIXEL
                keep = (cx >= lo_x) & (cx < hi_x) & (cy >= lo_y) & (cy < hi_y)
                c, score = c[keep], score[keep]
            parts.append(np.concatenate([c, score[:, None]], axis=1))
        out.append(np.concatenate(parts) if parts else np.zeros((0, 4)))
    return out


def find_tuned(weights: Path) -> tuple[dict | None, Path | None]:
    """The tuned conf / NMS IoU stored above the weights (``train`` writes OUT/yolo_conf.json)."""
    for d in [weights.parent, *weights.parents][:4]:
        f = d / CONF_FILE
        if f.is_file():
            return json.loads(f.read_text()), f
    return None, None


def thresholds(args: argparse.Namespace) -> tuple[float, float]:
    """(conf, iou): given on the command line, else the tuned ones, else ultralytics' defaults."""
    tuned, src = find_tuned(args.weights.resolve())
    conf = args.conf if args.conf is not None else (tuned["conf"] if tuned else 0.25)
    iou = args.iou if args.iou is not None else (tuned.get("iou", 0.7) if tuned else 0.7)
    print(f"conf = {conf}, NMS iou = {iou} ({'tuned: ' + str(src) if tuned else 'no yolo_conf.json found'})", flush=True)
    return conf, iou


def config_dir_for(weights: Path) -> Path:
    """The train run's YOLO_CONFIG_DIR when found above the weights, else one under runs/yolo."""
    for d in [weights.parent, *weights.parents][:4]:
        if (d / "yolo_config").is_dir():
            return d / "yolo_config"
    return Path("runs/yolo/yolo_config")


def load_model(weights: Path, threads: int):
    offline_env(config_dir_for(weights.resolve()), threads)
    YOLO, version = import_yolo(threads)
    return YOLO(str(weights)), version


def write_predictions(path: Path, det: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("x_px,y_px,r_px,score\n")
        for x, y, r, s in det.tolist():
            fh.write(f"{x!r},{y!r},{r!r},{s!r}\n")


def cmd_predict(args: argparse.Namespace) -> None:
    weights = args.weights
    conf, iou = thresholds(args)
    paths = list_images(args.images)
    model, _ = load_model(weights, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0, mp = time.perf_counter(), 0.0
    for p in paths:
        im = read_bgr(p)
        mp += im.shape[0] * im.shape[1] / 1e6
        det = predict_arrays(model, [im], conf, tile=args.tile, overlap=args.overlap, iou=iou, max_det=args.max_det)[0]
        write_predictions(args.out / f"{p.stem}.csv", det)
        print(f"{p.name}: {len(det)} circles", flush=True)
    s = time.perf_counter() - t0
    print(f"{len(paths)} images, {s:.1f} s, {s / max(mp, 1e-9):.2f} s/MP -> {args.out}")


# ------------------------------------------------------------------------------------------ tune
def best_conf(preds: list[np.ndarray], gts: list[np.ndarray], shapes: list[tuple[int, int]]) -> tuple[float, dict, list[dict]]:
    """Confidence threshold (grid 0.01..0.95) with the best pooled F1, srpsa matching, border ignored."""
    from srpsa.evaluation import aggregate, evaluate_image

    curve = []
    for t in np.round(np.arange(0.01, 0.951, 0.01), 2):
        m = aggregate([evaluate_image(g, p[p[:, 3] >= t, :3], image_shape=s, ignore_border=True) for g, p, s in zip(gts, preds, shapes)])
        curve.append({"conf": float(t), "precision": m.precision, "recall": m.recall, "f1": m.f1, "tp": m.tp, "fp": m.fp, "fn": m.fn})
    best = max(curve, key=lambda r: (r["f1"], -abs(r["conf"] - 0.25)))
    return best["conf"], best, curve


def tune(model, data: Path, out: Path, ious: list[float], max_det: int, weights: Path) -> dict:
    """Best (NMS IoU, conf) pair on the val images of ``data``; written to ``out/yolo_conf.json``."""
    from srpsa.io.annotations import read_circles

    imgs = sorted((data / "images" / "val").glob("*.png"))
    if not imgs:
        raise SystemExit(f"no val images in {data / 'images' / 'val'}")
    ims = [read_bgr(p) for p in imgs]
    gts = [read_circles(data / "circles" / "val" / f"{p.stem}.csv") for p in imgs]
    per_iou = []
    for iou in ious:
        preds = predict_arrays(model, ims, conf=0.01, iou=iou, max_det=max_det)
        conf, best, curve = best_conf(preds, gts, [im.shape[:2] for im in ims])
        per_iou.append({"iou": iou, "conf": conf, "f1": best["f1"], "precision": best["precision"], "recall": best["recall"], "curve": curve})
        print(f"  iou {iou:.2f}: best conf {conf:.2f}, val P {best['precision']:.3f} R {best['recall']:.3f} F1 {best['f1']:.3f}", flush=True)
    top = max(per_iou, key=lambda r: (r["f1"], r["iou"]))
    doc = {"conf": top["conf"], "iou": top["iou"], "val_f1": top["f1"], "val_precision": top["precision"],
           "val_recall": top["recall"], "max_det": max_det, "n_val_images": len(imgs), "weights": str(weights),
           "rule": "NMS IoU from the grid below and conf from 0.01..0.95 maximising pooled F1 on the val images; "
                   "srpsa one-to-one matching (centre distance <= 0.5 r_gt), border-cut particles ignored",
           "per_iou": per_iou}
    (out / CONF_FILE).write_text(json.dumps(doc, indent=1))
    print(f"tuned iou = {top['iou']:.2f}, conf = {top['conf']:.2f}: val P {top['precision']:.3f} R {top['recall']:.3f} "
          f"F1 {top['f1']:.3f} -> {out / CONF_FILE}")
    return doc


def cmd_tune(args: argparse.Namespace) -> None:
    model, _ = load_model(args.weights, args.threads)
    out = args.out or args.weights.resolve().parent.parent.parent  # OUT/run/weights/x.pt -> OUT
    doc = tune(model, args.data.resolve(), out, args.tune_ious, args.max_det, args.weights)
    meta_file = out / "train_meta.json"
    if meta_file.is_file():  # keep the run's summary in step with the thresholds in use
        meta = json.loads(meta_file.read_text())
        meta.update(conf=doc["conf"], iou=doc["iou"], val_f1=doc["val_f1"], retuned=time.strftime("%Y-%m-%d %H:%M"))
        meta_file.write_text(json.dumps(meta, indent=1))


# ------------------------------------------------------------------------------------------ train
def cmd_train(args: argparse.Namespace) -> None:
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    offline_env(out / "yolo_config", args.threads)
    YOLO, version = import_yolo(args.threads)
    data = args.data.resolve()
    close_mosaic = args.close_mosaic if args.close_mosaic is not None else min(10, max(1, args.epochs // 4))
    train_args = dict(data=str(data / "data.yaml"), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                      nbs=args.batch, workers=0, device="cpu", pretrained=False, amp=False, seed=args.seed,
                      deterministic=True, project=str(out), name="run", exist_ok=True, plots=False,
                      val=False, close_mosaic=close_mosaic, warmup_epochs=args.warmup_epochs,
                      single_cls=True, max_det=args.max_det, patience=0, cache=False)
    print("train args:", json.dumps(train_args), flush=True)
    model = YOLO(args.model)
    t0 = time.time()
    model.train(**train_args)
    wall = time.time() - t0
    weights = out / "run" / "weights" / "last.pt"
    model = YOLO(str(weights))
    doc = tune(model, data, out, args.tune_ious, args.max_det, weights)
    import torch

    meta = {"model": args.model, "ultralytics": version, "torch": torch.__version__, "epochs": args.epochs,
            "imgsz": args.imgsz, "batch": args.batch, "threads": args.threads, "train_wall_s": wall,
            "train_args": train_args, "weights": str(weights), "conf": doc["conf"], "iou": doc["iou"], "val_f1": doc["val_f1"],
            "machine": f"{platform.machine()} cores={os.cpu_count()}", "date": time.strftime("%Y-%m-%d"),
            "data_meta": json.loads((data / "meta.json").read_text()) if (data / "meta.json").is_file() else None}
    (out / "train_meta.json").write_text(json.dumps(meta, indent=1))
    print(f"trained {args.epochs} epochs in {wall:.0f} s; weights {weights}")


# ------------------------------------------------------------------------------------------ check
def cmd_check(args: argparse.Namespace) -> None:
    """Quick test on benchmarks/detection.py's test images (OM domain), scored as detection.py scores."""
    sys.path.insert(0, str(HERE))
    from detection import PRESETS, TEST_SEED, make_image, score  # noqa: E402  (benchmarks/detection.py)

    from srpsa.io.annotations import write_circles

    conf, iou = thresholds(args)
    model, version = load_model(args.weights, args.threads)
    model_name = args.model_name
    if model_name is None:  # the model YAML recorded by `train`
        metas = [d / "train_meta.json" for d in args.weights.resolve().parents[:3] if (d / "train_meta.json").is_file()]
        model_name = json.loads(metas[0].read_text())["model"] if metas else args.weights.name
    model_name = Path(model_name).stem
    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    size = tuple(args.size)
    predict_arrays(model, [np.zeros((*size, 3), np.uint8)], conf)  # warm-up, not timed
    rows = []
    for name in args.presets or PRESETS:
        gts, preds, secs, mp = [], [], 0.0, 0.0
        for i in range(args.n):
            seed = TEST_SEED + i
            image, gt, _ = make_image(name, seed, size, "om")
            stem = f"{name}-om-{seed}"
            write_png(out / "images" / f"{stem}.png", image)  # predicted from the 8-bit PNG, as a user would
            write_circles(out / "gt" / f"{stem}.csv", gt)
            im = read_bgr(out / "images" / f"{stem}.png")
            t0 = time.perf_counter()
            det = predict_arrays(model, [im], conf, tile=args.tile, overlap=args.overlap, iou=iou, max_det=args.max_det)[0]
            secs += time.perf_counter() - t0
            mp += im.shape[0] * im.shape[1] / 1e6
            write_predictions(out / "pred" / f"{stem}.csv", det)
            gts.append(gt)
            preds.append(det[:, :3])
        row = score(f"YOLO {model_name} (conf {conf:.2f}, iou {iou:.2f})", preds, gts, size, secs, mp)
        row.update(preset=name, domain="om", n_images=args.n, n_gt=int(sum(len(g) for g in gts)))
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"weights": str(args.weights), "model": model_name, "conf": conf, "iou": iou, "ultralytics": version, "size": list(size), "n": args.n,
            "tile": args.tile, "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} cores={os.cpu_count()}"}
    (out / "check.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print("| preset | n_gt | precision | recall | F1 | mean-diameter err % | s/MP |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['n_gt']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['mean_err_pct']:.1f} | {r['s_per_mp']:.2f} |")


# ------------------------------------------------------------------------------------------ cli
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common_pred(p):
        if p.prog.split()[-1] in ("predict", "check"):
            p.add_argument("--conf", type=float, default=None, help="default: the tuned value in yolo_conf.json")
            p.add_argument("--iou", type=float, default=None, help="NMS IoU; default: the tuned value in yolo_conf.json")
        else:
            p.add_argument("--tune-ious", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                           help="NMS IoU thresholds tried when tuning (ultralytics' default is 0.7)")
        p.add_argument("--max-det", type=int, default=DEFAULT_MAX_DET)
        p.add_argument("--threads", type=int, default=1, help="torch threads")

    p = sub.add_parser("data", help="simulator training/val images -> YOLO dataset")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--n-val", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="first train seed (val: 1_000_000 + seed)")
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("train", help="train from a model YAML (no pretrained weights), then tune conf")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="yolov5nu.yaml", help="ultralytics model YAML (yolov5nu.yaml = YOLOv5u, yolov8n.yaml)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--imgsz", type=int, default=512)
    p.add_argument("--batch", type=int, default=4, help="also the nominal batch: one optimiser step per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--close-mosaic", type=int, default=None, help="last epochs without mosaic (default min(10, epochs // 4))")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    common_pred(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("tune", help="re-tune conf on the val images of --data")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None, help="folder for yolo_conf.json (default: the train --out)")
    common_pred(p)
    p.set_defaults(fn=cmd_tune)

    p = sub.add_parser("predict", help="<stem>.csv (x_px,y_px,r_px,score) per image")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--images", nargs="+", required=True, help="image files and/or folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tile", type=int, default=0, help="tile size in px (0: whole image at native resolution)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap in px")
    common_pred(p)
    p.set_defaults(fn=cmd_predict)

    p = sub.add_parser("check", help="quick test on benchmarks/detection.py's OM test images")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=2, help="images per preset")
    p.add_argument("--size", type=int, nargs=2, default=(512, 768), metavar=("H", "W"))
    p.add_argument("--presets", nargs="*", default=None)
    p.add_argument("--tile", type=int, default=0)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--model-name", default=None, help="label for the rows (default: the model YAML in train_meta.json)")
    common_pred(p)
    p.set_defaults(fn=cmd_check)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
