"""Every method on one 4752x3168 OM image: whole-process seconds, seconds per stage, peak memory, the
compute floor of srpsa's networks, and accuracy on the same image.

    .venv/bin/python benchmarks/speed_methods.py [--repeats 3] [--tune-budget 40] [--no-yolo] [--write]

Image: ``examples/om_example.tif`` enlarged x4.64 to 4752x3168 (:func:`speed.make_image`; particles
~56-186 px) with its ground truth scaled the same way, so every method is also scored (F1, mean-diameter
error of the particles not cut by the border).

Methods, each run ``--repeats`` times in a fresh process from the shell (``/usr/bin/time``: wall seconds
and peak RSS of the whole process, median wall reported):

- ``srpsa analyze`` as a user runs it: ``--pipeline full`` (default: translate -> detect), ``--pipeline
  full --sr model`` (translate -> ESRGAN -> detect, the paper's chain), ``--pipeline detect-only``; ONNX
  Runtime (``--backend auto``'s choice when it is installed) and PyTorch. Stage seconds come from each
  run's ``summary.json``; one untimed run first exports the ONNX graphs (a one-off per weights).
- Hough (OpenCV) and watershed (scikit-image, the ImageJ "Analyze Particles" recipe), tuned in-domain on
  a 1024x1024 crop of the same image with its ground truth (``--tune-budget`` s each), then run on the
  whole image in a fresh process: load, detect, write particles.csv.
- YOLO (ultralytics, trained from scratch on the simulator, ``.venv-yolo``): whole-image predict at
  native size, whole process only (its stages are not separable from outside).

Compute floor (srpsa): conv multiply-accumulates per network-input pixel (forward hooks) x the pixels
each stage fed (overlaps excluded) / 65 GMAC/s, the best ONNX Runtime rate measured on this CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import replace_section  # noqa: E402
from speed import EXAMPLE, ORT_PEAK_GMACS, copy_weights, macs_per_pixel, make_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def scaled_gt(factor: float, shape: tuple[int, int]) -> np.ndarray:
    gt = pd.read_csv(EXAMPLE.with_name("om_example_gt.csv"))[["x", "y", "r"]].to_numpy(float)
    gt = np.column_stack([(gt[:, 0] + 0.5) * factor - 0.5, (gt[:, 1] + 0.5) * factor - 0.5, gt[:, 2] * factor])
    return gt[gt[:, 1] < shape[0]]


def score(gt: np.ndarray, pred: np.ndarray, shape: tuple[int, int]) -> dict[str, float]:
    from detection import interior  # benchmarks/detection.py

    from srpsa.evaluation import aggregate, evaluate_image

    m = aggregate([evaluate_image(gt, pred, image_shape=shape, ignore_border=True)])
    dg, dp = 2 * interior(gt, shape)[:, 2], 2 * interior(pred, shape)[:, 2]
    return {"f1": m.f1, "precision": m.precision, "recall": m.recall, "mean_err_pct": 100 * (dp.mean() / dg.mean() - 1) if len(dp) else None, "n_pred": int(len(pred))}


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """(wall s, peak RSS KiB, stdout) of a command run from the shell through /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        proc = subprocess.run(["/usr/bin/time", "-o", tf.name, "-f", "%e %M", *cmd], check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        wall, rss = tf.read().split()[-2:]
    return float(wall), int(rss), proc.stdout


# -- compute floor ----------------------------------------------------------------------------------


def network_costs(weights: Path) -> dict[str, float]:
    from srpsa.models.release import load_generator_release
    from srpsa.models.detector_release import load_weights

    det, _, _ = load_weights(weights / "detector-sem")
    tr, _ = load_generator_release(weights / "translate")
    sr, _ = load_generator_release(weights / "superres")
    return {"detector": macs_per_pixel(det.eval()), "translate": macs_per_pixel(tr.eval()), "superres": macs_per_pixel(sr.eval())}


def floors(summary: dict[str, Any], mac: dict[str, float]) -> dict[str, float]:
    """GMAC per stage of one srpsa run, from what its summary.json says it did."""
    h, w = summary["height"], summary["width"]

    def det_gmac(shape: list[int] | None, scales: list[float]) -> float:
        return 0.0 if not shape else shape[0] * shape[1] * sum(s * s for s in scales) * mac["detector"] / 1e9

    out: dict[str, float] = {}
    e, d = summary.get("enhance"), summary.get("detect")
    if e:
        out["guide"] = det_gmac(e.get("guide_shape"), e.get("guide_scales", []))
        t = e["translate_scale"]
        out["translate"] = h * w * t * t * mac["translate"] / 1e9
        if e.get("sr_mode") == "model":
            out["super_resolve"] = h * w * e["sr_input_scale"] ** 2 * mac["superres"] / 1e9
        o = e["output_scale"]
        out["detect"] = det_gmac([round(h * o), round(w * o)], e.get("sem_scales", []))
    elif d:
        g = det_gmac(d.get("guide_shape"), d.get("guide_scales", []))
        out["detect"] = g + det_gmac([h, w], d.get("scales", []))
    return out


# -- peers in a fresh process -------------------------------------------------------------------------


def peer_main(method: str, params_json: str, image: str, out: str) -> None:
    """Run one peer on the image and print its stage seconds as JSON (the child process)."""
    t0 = time.perf_counter()
    from srpsa.io import read_image

    img = read_image(Path(image)).data
    t1 = time.perf_counter()
    if method == "hough":
        from srpsa.baselines.hough import HoughParams, hough_detect

        circles, _ = hough_detect(img, HoughParams(**json.loads(params_json)))
    else:
        from srpsa.baselines.watershed import WatershedParams, watershed_detect

        circles, _ = watershed_detect(img, WatershedParams(**json.loads(params_json)))
    t2 = time.perf_counter()
    pd.DataFrame(np.asarray(circles, float).reshape(-1, 3), columns=["x_px", "y_px", "r_px"]).to_csv(out, index=False)
    t3 = time.perf_counter()
    print(json.dumps({"import + load": t1 - t0, "detect": t2 - t1, "write": t3 - t2}))


def tune_peers(image: np.ndarray, gt: np.ndarray, budget: float) -> dict[str, dict[str, Any]]:
    from dataclasses import asdict

    from srpsa.baselines.hough import tune_hough
    from srpsa.baselines.watershed import tune_watershed

    crop = image[:1024, :1024]
    g = gt[(gt[:, 0] < 1024) & (gt[:, 1] < 1024)]
    hp, _ = tune_hough([crop], [g], time_budget_s=budget)
    wp, _ = tune_watershed([crop], [g], time_budget_s=budget)
    return {"hough": asdict(hp), "watershed": asdict(wp)}


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tune-budget", type=float, default=40.0)
    ap.add_argument("--no-yolo", action="store_true")
    ap.add_argument("--yolo-weights", type=Path, default=ROOT / "runs" / "yolo" / "yolov5nu" / "run" / "weights" / "last.pt")
    ap.add_argument("--only", nargs="+", default=None, help="run only methods whose label contains one of these")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "speed_methods.json")
    ap.add_argument("--write", action="store_true", help="replace the speed_methods section of benchmarks/RESULTS.md")
    args = ap.parse_args()

    from srpsa.io import read_image

    work = Path(tempfile.mkdtemp(prefix="srpsa-speed-"))
    img_path = work / "om_4752x3168.tif"
    desc = make_image(img_path)
    image = read_image(img_path).data
    shape = image.shape
    gt = scaled_gt(desc["factor"], shape)
    weights = copy_weights(work / "weights")
    mac = network_costs(weights)
    load_before = os.getloadavg()[0]
    print(f"image {shape}, {len(gt)} GT particles; MAC/px {mac}", flush=True)

    srpsa_methods = {
        "srpsa full (default: translate -> detect), onnx": ["--pipeline", "full", "--backend", "onnx"],
        "srpsa full, torch": ["--pipeline", "full", "--backend", "torch"],
        "srpsa full --sr model (translate -> ESRGAN -> detect), onnx": ["--pipeline", "full", "--sr", "model", "--backend", "onnx"],
        "srpsa detect-only, onnx": ["--pipeline", "detect-only", "--backend", "onnx"],
        "srpsa detect-only, torch": ["--pipeline", "detect-only", "--backend", "torch"],
    }
    rows: list[dict[str, Any]] = []

    def wanted(label: str) -> bool:
        return args.only is None or any(k in label for k in args.only)

    for label, extra in srpsa_methods.items():
        if not wanted(label):
            continue
        out = work / "out"
        cmd = [PY, "-m", "srpsa", "analyze", str(img_path), "--out", str(out), "--weights", str(weights), "--bootstrap", "1000", "--force", *extra]
        if "onnx" in extra:
            timed(cmd)  # exports the ONNX graphs once (cached next to the weights copy): not timed
        runs = [timed(cmd) for _ in range(args.repeats)]
        summary = json.loads((out / img_path.stem / "summary.json").read_text())
        pred = pd.read_csv(out / img_path.stem / "particles.csv")[["x_px", "y_px", "r_px"]].to_numpy(float)
        gm = floors(summary, mac)
        rows.append({"method": label, "wall_s": [r[0] for r in runs], "median_wall_s": statistics.median(r[0] for r in runs),
                     "peak_rss_mib": max(r[1] for r in runs) / 1024, "stages_s": summary["seconds"], "gmac": gm,
                     "floor_s": {k: v / ORT_PEAK_GMACS for k, v in gm.items()}, **score(gt, pred, shape)})
        print(json.dumps(rows[-1]), flush=True)

    if wanted("Hough") or wanted("watershed"):
        params = tune_peers(image, gt, args.tune_budget)
        for method, label in (("hough", "Hough (OpenCV, tuned in-domain)"), ("watershed", "watershed (scikit-image, tuned in-domain)")):
            if not wanted(label):
                continue
            out_csv = work / f"{method}.csv"
            cmd = [PY, str(Path(__file__)), "--peer", method, json.dumps(params[method]), str(img_path), str(out_csv)]
            runs = [timed(cmd) for _ in range(args.repeats)]
            stages = json.loads(runs[-1][2].strip().splitlines()[-1])  # the last run's own stage timer
            pred = pd.read_csv(out_csv)[["x_px", "y_px", "r_px"]].to_numpy(float)
            rows.append({"method": label, "wall_s": [r[0] for r in runs], "median_wall_s": statistics.median(r[0] for r in runs),
                         "peak_rss_mib": max(r[1] for r in runs) / 1024, "stages_s": stages, "params": params[method], **score(gt, pred, shape)})
            print(json.dumps(rows[-1]), flush=True)

    yolo_py = ROOT / ".venv-yolo" / "bin" / "python"
    if not args.no_yolo and wanted("YOLO") and yolo_py.exists() and args.yolo_weights.exists():
        src, dst = work / "yolo_in", work / "yolo_out"
        src.mkdir()
        import cv2

        cv2.imwrite(str(src / "img000.png"), np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
        cmd = [str(yolo_py), str(ROOT / "benchmarks" / "yolo_baseline.py"), "predict", "--weights", str(args.yolo_weights), "--images", str(src), "--out", str(dst)]
        runs = [timed(cmd) for _ in range(args.repeats)]
        df = pd.read_csv(dst / "img000.csv")
        pred = df[["x_px", "y_px", "r_px"]].to_numpy(float) if len(df) else np.zeros((0, 3))
        rows.append({"method": "YOLO (ultralytics v5nu, from scratch, whole image at native size)", "wall_s": [r[0] for r in runs],
                     "median_wall_s": statistics.median(r[0] for r in runs), "peak_rss_mib": max(r[1] for r in runs) / 1024,
                     "stages_s": {}, **score(gt, pred, shape)})
        print(json.dumps(rows[-1]), flush=True)

    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "load_before": load_before, "load_after": os.getloadavg()[0], "image": desc,
            "n_gt": int(len(gt)), "mac_per_px": mac, "repeats": args.repeats,
            "command": "python benchmarks/speed_methods.py " + " ".join(sys.argv[1:])}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float) + "\n")
    text = render(meta, rows)
    print(text)
    if args.write:
        replace_section("speed_methods", text)


def render(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def f(x: Any, d: int = 2) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    lines = [f"## Every method on one 4752x3168 OM image ({meta['date'][:10]})\n",
             f"`{meta['command']}` ({meta['machine']}, Python {meta['python']}; load average {meta['load_before']:.1f} before, "
             f"{meta['load_after']:.1f} after). Image: `om_example.tif` enlarged x{meta['image']['factor']:.2f} "
             f"({meta['n_gt']} GT particles). Whole process from the shell, median of {meta['repeats']}; peak RSS = largest of the runs. "
             "F1 and mean-diameter error on this image (particles not cut by the border).\n",
             "| method | wall s (median) | peak RSS MiB | F1 | mean-diameter error | particles |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {f(r['median_wall_s'], 1)} | {f(r['peak_rss_mib'], 0)} | {f(r['f1'], 3)} | {f(r['mean_err_pct'], 1)} % | {r['n_pred']} |")
    lines += ["", "Seconds per stage (in-process, from `summary.json` / the peer's own timer) and the compute floor "
              "(GMAC / 65 GMAC/s) of the network stages; the rest of the wall time is interpreter start, imports "
              "(torch alone ~2.2 s) and model loading.\n",
              "| method | stage | seconds | GMAC | floor s | seconds / floor |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        for stage, sec in r["stages_s"].items():
            g = r.get("gmac", {}).get(stage)
            fl = None if g is None else g / ORT_PEAK_GMACS
            ratio = f"{sec / fl:.1f}x" if fl else "-"
            lines.append(f"| {r['method']} | {stage} | {f(sec)} | {f(g, 1) if g is not None else '-'} | {f(fl)} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer_main(*sys.argv[2:6])
    else:
        main()
