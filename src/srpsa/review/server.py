"""Run the review app with uvicorn on 127.0.0.1 only (the page can rewrite analysis files, so it is
never exposed to the network)."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

from srpsa.errors import InputError

HOST = "127.0.0.1"


def check_port(port: int) -> None:
    """InputError naming --port when it is out of range or already taken on 127.0.0.1."""
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise InputError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror or exc}); choose another port") from exc


def make_server(root: Path, port: int):
    """A configured :class:`uvicorn.Server` (not started) for ``root``."""
    try:
        import uvicorn
    except ImportError as exc:  # optional extra
        raise InputError("srpsa review needs the 'review' extra: pip install 'srpsa[review]'") from exc
    from srpsa.review.app import create_app

    config = uvicorn.Config(create_app(root), host=HOST, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(root: Path, port: int, open_browser: bool) -> None:
    """Serve ``root`` until Ctrl-C."""
    check_port(port)
    server = make_server(root, port)
    url = f"http://{HOST}:{port}/"
    print(f"srpsa review: {root} at {url} (Ctrl-C stops)", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server.run()
