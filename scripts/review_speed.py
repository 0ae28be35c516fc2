"""Redraw time of the review page on a large image with many circles, in headless Chromium.

    python scripts/review_speed.py [--width 4752 --height 3168 --circles 3000]

Builds a throw-away analysis folder in a temp dir (a synthetic gray image of that size, a
particles.csv of random circles, a summary.json in analyze's format), serves it, waits for the
full-size image, then times the page's own render() after zoom steps (wheel-like, about the centre)
and after pans. Prints the median and the 95th percentile in ms. Headless Chromium here rasterises in
software, so a desktop browser with a GPU is at least as fast.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, width: int, height: int, n: int) -> Path:
    import cv2

    from srpsa.psd.particles import particle_table

    rng = np.random.default_rng(0)
    img = (rng.normal(150, 20, (height, width))).clip(0, 255).astype(np.uint8)
    circles = np.column_stack([rng.uniform(20, width - 20, n), rng.uniform(20, height - 20, n), rng.uniform(8, 30, n)])
    for x, y, r in circles[:: max(1, n // 500)]:
        cv2.circle(img, (int(x), int(y)), int(r), 60, -1)
    image = root / "big.png"
    cv2.imwrite(str(image), img)
    out = root / "out" / "big"
    out.mkdir(parents=True)
    particle_table(circles, rng.uniform(0.3, 1.0, n), (height, width), None).to_csv(out / "particles.csv", index=False)
    summary = {"image": str(image), "height": height, "width": width, "pixel_size_um": None, "unit": "px",
               "count": n, "count_used": n, "statistics": {"Q0": {}, "Q3": {}}, "settings": {}, "warnings": []}
    (out / "summary.json").write_text(json.dumps(summary))
    return root / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4752)
    parser.add_argument("--height", type=int, default=3168)
    parser.add_argument("--circles", type=int, default=3000)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from srpsa.review.server import make_server

    tmp = Path(tempfile.mkdtemp(prefix="review_speed_"))
    try:
        folder = make_folder(tmp, args.width, args.height, args.circles)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = make_server(folder, port)
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
        try:
            t0 = time.perf_counter()
            driver.get(f"http://127.0.0.1:{port}/")
            full = f"window.srpsaReview && srpsaReview.state.img && srpsaReview.state.img.naturalWidth === {args.width}"
            while not driver.execute_script(f"return !!({full})"):
                if time.perf_counter() - t0 > 120:
                    raise SystemExit("full-size image did not load in 120 s")
                time.sleep(0.1)
            load_s = time.perf_counter() - t0
            times = driver.execute_script("""
                const R = srpsaReview, c = document.getElementById('canvas').getBoundingClientRect(), out = {zoom: [], pan: []};
                R.fit();
                for (let i = 0; i < 40; i++) {  // zoom in to ~16x and back
                  R.zoomAt(c.width / 2, c.height / 2, i < 20 ? 1.15 : 1 / 1.15);
                  const t = performance.now(); R.render(); out.zoom.push(performance.now() - t);
                }
                R.zoomAt(c.width / 2, c.height / 2, 4);
                for (let i = 0; i < 40; i++) {
                  R.state.view.tx -= 25; const t = performance.now(); R.render(); out.pan.push(performance.now() - t);
                }
                return out;""")
        finally:
            driver.quit()
            server.should_exit = True
        print(f"image {args.width}x{args.height}, {args.circles} circles; page + full image loaded in {load_s:.1f} s")
        for kind, values in times.items():
            v = np.asarray(values)
            print(kind, " ".join(f"{x:.0f}" for x in v))
            print(f"{kind}: render median {np.median(v):.1f} ms, p95 {np.percentile(v, 95):.1f} ms, max {v.max():.1f} ms (n={v.size})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
