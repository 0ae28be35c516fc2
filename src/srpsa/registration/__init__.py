"""OM/SEM image-pair registration (paper section 3.1): landmarks -> affine, fiducials, refinement, warp.

- :mod:`~srpsa.registration.landmarks`: landmark CSV (``om_x, om_y, sem_x, sem_y``);
- :mod:`~srpsa.registration.estimate`: least-squares / RANSAC affine with sanity checks;
- :mod:`~srpsa.registration.fiducials`: automatic detection and pairing of the cross markers;
- :mod:`~srpsa.registration.refine`: optional ECC refinement;
- :mod:`~srpsa.registration.warp`: resampling onto a common grid;
- :mod:`~srpsa.registration.pipeline`: files in, registered pair + transform JSON out.

All matrices map OM pixel coordinates ``(x, y, 1)`` (x = column, y = row) to SEM pixel coordinates.
"""

from __future__ import annotations

from srpsa.registration.estimate import AffineResult, check_spread, fit_affine, transform_points
from srpsa.registration.fiducials import Fiducial, detect_fiducials, match_fiducials, register_fiducials
from srpsa.registration.landmarks import read_landmarks, write_landmarks
from srpsa.registration.pipeline import RegistrationOutput, pair_stem, register_files
from srpsa.registration.refine import RefineOutcome, refine_ecc, registration_ncc
from srpsa.registration.warp import RegisteredPair, resolution_factor, warp_affine, warp_pair

__all__ = [
    "AffineResult",
    "Fiducial",
    "RefineOutcome",
    "RegisteredPair",
    "RegistrationOutput",
    "check_spread",
    "detect_fiducials",
    "fit_affine",
    "match_fiducials",
    "pair_stem",
    "read_landmarks",
    "refine_ecc",
    "register_fiducials",
    "register_files",
    "registration_ncc",
    "resolution_factor",
    "transform_points",
    "warp_affine",
    "warp_pair",
    "write_landmarks",
]
