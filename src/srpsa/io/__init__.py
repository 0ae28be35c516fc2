"""Input/output: images with calibration, circle annotations, atomic writes."""
