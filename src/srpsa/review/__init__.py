"""Review and correct the circles of an ``srpsa analyze`` folder in the browser (``srpsa review``).

Modules: folder (read the analysis folder), stats (the pipeline's statistics step on a reviewed table),
save (validate and write a reviewed table), outputs (redraw overlay/PSD, rebuild summary.csv and the
report), app (the Starlette app), server (run it on 127.0.0.1).
"""
