"""Screenshot of the `srpsa review` page in headless Chromium (docs/img/review.png).

    python scripts/review_screenshot.py ANALYSIS_FOLDER docs/img/review.png [--select N]

Serves ANALYSIS_FOLDER on a free 127.0.0.1 port, opens the first image, selects N circles (to show
the selection) and writes the PNG. Nothing is saved to the folder.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--select", type=int, default=2)
    parser.add_argument("--size", default="1400,860")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from srpsa.review.folder import check_analysis_folder
    from srpsa.review.server import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server(check_analysis_folder(args.folder), port)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={args.size}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        deadline = time.time() + 60
        while not driver.execute_script("return !!(window.srpsaReview && srpsaReview.state.img && srpsaReview.state.meta)"):
            if time.time() > deadline:
                raise SystemExit("page did not load")
            time.sleep(0.1)
        time.sleep(1.0)  # the full-size image replaces the preview
        driver.execute_script(
            "const S = srpsaReview.state; [...S.circles.keys()].slice(0, arguments[0]).forEach((u) => S.selected.add(u));"
            "document.dispatchEvent(new Event('srpsa-redraw'));", args.select)
        driver.execute_script("window.dispatchEvent(new Event('resize'))")
        time.sleep(0.5)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.png))
        print(args.png)
    finally:
        driver.quit()
        server.should_exit = True


if __name__ == "__main__":
    main()
