"""Circle annotations: read and write CSV, VGG Image Annotator 2, LabelMe and COCO files.

srpsa circles are ``(x, y, r)`` in pixels with pixel centres at integer coordinates (pixel (row i,
col j) covers x in [j - 0.5, j + 0.5]). VIA, LabelMe and COCO store continuous image coordinates in
which the top-left *corner* of the image is (0, 0), so pixel j covers [j, j + 1]: a centre read from
them has 0.5 subtracted, and 0.5 is added on writing. Radii need no shift. CSV files hold srpsa's own
coordinates unchanged. Shapes other than circles are reduced to circles (documented in
docs/formats.md): polygons to the area-equivalent circle at their centroid, ellipses to the
area-equivalent circle, boxes to the circle with r = (w + h) / 4.

Modules: :mod:`~srpsa.io.annotations.api` (format choice, :func:`read_circles` and friends), one module per
format (:mod:`~srpsa.io.annotations.csv_format`, :mod:`~srpsa.io.annotations.via`,
:mod:`~srpsa.io.annotations.labelme`, :mod:`~srpsa.io.annotations.coco`) and their shared pieces
(:mod:`~srpsa.io.annotations.common`).
"""

from srpsa.io.annotations.api import read_circle_sets, read_circles, write_circle_sets, write_circles
from srpsa.io.annotations.common import FORMATS, HALF_PIXEL, polygon_to_circle

__all__ = ["FORMATS", "HALF_PIXEL", "polygon_to_circle", "read_circle_sets", "read_circles", "write_circle_sets", "write_circles"]
