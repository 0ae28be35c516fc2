"""srpsa.io annotations: round trips, half-pixel conventions, shape reduction, malformed input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from srpsa.errors import InputError
from srpsa.io import polygon_to_circle, read_circle_sets, read_circles, write_circle_sets, write_circles

CIRCLES = np.array([[10.25, 20.5, 3.125], [0.0, 0.0, 0.5], [123.456789, 7.0 / 3.0, 11.1]])


@pytest.mark.parametrize(("name", "fmt"), [("c.csv", "csv"), ("c.json", "via"), ("c.json", "labelme"),
                                           ("c.json", "coco"), ("my_coco.json", "auto"), ("x_via.json", "auto"),
                                           ("a_labelme.json", "auto"), ("c.tsv", "auto")])
def test_round_trip(tmp_path: Path, name: str, fmt: str) -> None:
    path = tmp_path / name
    write_circles(path, CIRCLES, fmt=fmt, image_path=tmp_path / "img.png", image_shape=(200, 300))
    np.testing.assert_allclose(read_circles(path), CIRCLES, rtol=0, atol=1e-9)
    np.testing.assert_allclose(read_circles(path, fmt=fmt if fmt != "auto" else "auto"), CIRCLES, atol=1e-9)


def test_round_trip_empty_and_sets(tmp_path: Path) -> None:
    write_circles(tmp_path / "e.csv", np.zeros((0, 3)))
    assert read_circles(tmp_path / "e.csv").shape == (0, 3)
    sets = {"a.png": CIRCLES, "b.png": CIRCLES[:1], "c.png": np.zeros((0, 3))}
    for fmt in ("via", "coco"):
        path = tmp_path / f"s_{fmt}.json"
        write_circle_sets(path, sets, fmt=fmt)
        back = read_circle_sets(path)
        assert list(back) == list(sets)
        for key, circles in sets.items():
            np.testing.assert_allclose(back[key], circles, atol=1e-9)
        np.testing.assert_allclose(read_circles(path, image_name="/some/dir/b.png"), CIRCLES[:1], atol=1e-9)
        with pytest.raises(InputError, match="3 images"):
            read_circles(path)
        with pytest.raises(InputError, match="zzz.png"):
            read_circles(path, image_name="zzz.png")


def test_half_pixel_conventions(tmp_path: Path) -> None:
    # Corner-origin formats: pixel 0 spans [0, 1], its centre 0.5 is srpsa's 0.
    via = {"k": {"filename": "i.png", "size": -1, "regions": [
        {"shape_attributes": {"name": "circle", "cx": 10.5, "cy": 4.5, "r": 2}}]}}
    labelme = {"shapes": [{"shape_type": "circle", "points": [[10.5, 4.5], [10.5, 7.5]]}], "imagePath": "i.png"}
    coco = {"images": [{"id": 7, "file_name": "i.png"}], "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2]}], "categories": []}
    for name, doc in (("via.json", via), ("lm.json", labelme), ("coco.json", coco)):
        (tmp_path / name).write_text(json.dumps(doc))
    np.testing.assert_allclose(read_circles(tmp_path / "via.json"), [[10, 4, 2]])
    np.testing.assert_allclose(read_circles(tmp_path / "lm.json"), [[10, 4, 3]])
    np.testing.assert_allclose(read_circles(tmp_path / "coco.json"), [[0.5, 0.5, 1]])
    # CSV is srpsa's own convention, unchanged; the x,y,r header form is accepted too.
    (tmp_path / "c.csv").write_text("X, y ,R,label\n1.5,2,3,a\n")
    np.testing.assert_allclose(read_circles(tmp_path / "c.csv"), [[1.5, 2, 3]])


def test_polygons_and_other_shapes(tmp_path: Path) -> None:
    assert polygon_to_circle([0, 4, 4, 0], [0, 0, 2, 2]) == pytest.approx((2, 1, math.sqrt(8 / math.pi)))
    assert polygon_to_circle([0, 1, 2], [0, 1, 2]) is None  # zero area
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    cx, cy, r = polygon_to_circle(1000 + 30 * np.cos(theta), 2000 + 30 * np.sin(theta))
    assert (cx, cy) == pytest.approx((1000, 2000), abs=1e-9) and r == pytest.approx(30, rel=1e-3)
    via = {"_via_img_metadata": {"k": {"filename": "i.png", "size": 1, "regions": [
        {"shape_attributes": {"name": "polygon", "all_points_x": [0, 4, 4, 0], "all_points_y": [0, 0, 2, 2]}},
        {"shape_attributes": {"name": "ellipse", "cx": 5.5, "cy": 5.5, "rx": 4, "ry": 1}},
        {"shape_attributes": {"name": "point", "cx": 1, "cy": 1}}]}}}
    (tmp_path / "v.json").write_text(json.dumps(via))
    with pytest.warns(UserWarning, match="point"):
        got = read_circles(tmp_path / "v.json")
    np.testing.assert_allclose(got, [[1.5, 0.5, math.sqrt(8 / math.pi)], [5, 5, 2]])
    lm = {"shapes": [{"shape_type": "polygon", "points": [[0, 0], [4, 0], [4, 2], [0, 2]]},
                     {"shape_type": "rectangle", "points": [[4, 2], [0, 0]]}]}
    (tmp_path / "lm.json").write_text(json.dumps(lm))
    expected = [[1.5, 0.5, math.sqrt(8 / math.pi)], [1.5, 0.5, 1.5]]
    np.testing.assert_allclose(read_circles(tmp_path / "lm.json"), expected)


def test_ampis_via_file(real_data: Path) -> None:
    path = real_data / "ampis_powder_sem" / "annotations" / "via_powder_particle_masks_training.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    sets = read_circle_sets(path)
    assert len(sets) == 4
    circles = np.concatenate(list(sets.values()))
    assert len(circles) == 1122
    assert 40 < np.median(2 * circles[:, 2]) < 60
    assert read_circles(path, image_name="Sc2Tile_001-001-000_0-000.png").shape == (259, 3)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("a.json", "{not json", "invalid JSON"),
    ("a.json", '{"something": 1}', "cannot tell"),
    ("a.json", '{"k": {"filename": "i.png", "regions": [{"shape_attributes": {"name": "circle", "cx": 1}}]}}',
     "has no 'cy'"),
    ("a.json", '{"k": {"filename": "i.png", "regions": [{"shape_attributes": '
               '{"name": "circle", "cx": 1, "cy": "x", "r": 1}}]}}', "not a number"),
    ("a.json", '{"images": [{"id": 1, "file_name": "i"}], "annotations": [{"image_id": 1, "bbox": [1, 2]}]}',
     "bbox"),
    ("a.json", '{"images": [], "annotations": [{"image_id": 3, "bbox": [1, 2, 3, 4]}]}', "image_id"),
    ("a.json", '{"shapes": [{"shape_type": "circle", "points": [[1, 2]]}]}', "2 points"),
    ("a.csv", "a,b\n1,2\n", "columns"),
    ("a.csv", "x,y,r\n1,2,abc\n", "line 2"),
    ("a.csv", "x,y,r\n1,2,-3\n", "negative radius"),
    ("a.csv", "", "empty"),
    ("a.xml", "<a/>", "unknown annotation suffix"),
])
def test_malformed(tmp_path: Path, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_circles(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_circles(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="directory"):
        read_circles(tmp_path)
    with pytest.raises(InputError, match="format"):
        read_circles(tmp_path / "x.csv", fmt="yolo")
    with pytest.raises(InputError, match="give one of"):
        write_circles(tmp_path / "plain.json", CIRCLES)
    with pytest.raises(ValueError, match="shape"):
        write_circles(tmp_path / "c.csv", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        write_circles(tmp_path / "c.csv", [[1, 2, np.nan]])
    with pytest.raises(InputError, match="one image"):
        write_circle_sets(tmp_path / "c.csv", {"a": CIRCLES, "b": CIRCLES})
