"""napari plugin (npe2; optional extra ``srpsa[napari]``): a reader for ``srpsa analyze`` output folders and
an analyze widget. The manifest is ``napari.yaml`` in this package; nothing here imports napari at
import time, so the core install stays light."""
