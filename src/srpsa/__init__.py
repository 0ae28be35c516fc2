"""srpsa: particle size analysis of round particles from optical microscope images.

Pipeline (paper: Patil et al., "Multi-Modal Super Resolution for Dense Microscopic Particle Size
Estimation"): OM image -> Pix2Pix translation to SEM-like -> ESRGAN super-resolution -> SR-PSA circle
detector -> particle size distribution.

Coordinate convention used everywhere: a circle is (x, y, r) in pixels, x = column, y = row, and the
centre of pixel (row i, column j) is at (x=j, y=i); pixel (i, j) covers [j-0.5, j+0.5] x [i-0.5, i+0.5].
"""

__version__ = "0.1.0"

# The public API, imported on first use (PEP 562) so that `import srpsa` stays cheap (no torch, pandas).
_API: dict[str, str] = {
    "analyze": "srpsa.inference.analyzer",
    "Analyzer": "srpsa.inference.analyzer",
    "Result": "srpsa.inference.result",
    "Statistics": "srpsa.inference.result",
    "AnalyzeSettings": "srpsa.inference.pipeline",
}
__all__ = ["__version__", *_API]


_SUBMODULES = ("errors", "io", "psd")  # also reachable as attributes, e.g. srpsa.errors.ParameterError


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"srpsa.{name}")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'srpsa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
