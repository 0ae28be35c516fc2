"""Page skeleton and style sheet of ``report.html`` (plain ``string.Template``, no template engine).

Kept as Python strings rather than package data files so that a wheel always contains them (the
package-data globs in pyproject.toml cover only weights, data and configs). Everything is inline: the
report must render identically when opened from an e-mail attachment with no network access.
"""

from __future__ import annotations

from string import Template

CSS = """
:root {
  --fg: #1f2933; --muted: #5f6b7a; --line: #d9e2ec; --head: #f0f4f8; --accent: #1f5f8b;
  --warn: #b7791f; --warn-bg: #fff8e6; --err: #b42318; --err-bg: #fdecea; --info: #1f5f8b; --info-bg: #eef4fa;
  --ok: #1e7b34; --ok-bg: #e6f4ea;
}
* { box-sizing: border-box; }
html { background: #eef1f5; }
body { margin: 0; color: var(--fg); font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 36px 48px; background: #fff; min-height: 100vh; }
header.report { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 20px; }
h1 { font-size: 26px; margin: 0 0 6px; font-weight: 650; }
h2 { font-size: 19px; color: var(--accent); border-bottom: 1px solid var(--line); padding-bottom: 4px; margin: 36px 0 12px; }
h3 { font-size: 16px; margin: 0 0 8px; }
p { margin: 6px 0; }
.meta { color: var(--muted); font-size: 13px; }
.meta span + span::before { content: "\\00b7"; margin: 0 8px; }
a { color: var(--accent); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card .k { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .05em; }
.card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.callout { border-left: 4px solid var(--warn); background: var(--warn-bg); padding: 8px 12px; margin: 10px 0; border-radius: 0 4px 4px 0; }
.callout.error { border-color: var(--err); background: var(--err-bg); }
.callout.info { border-color: var(--info); background: var(--info-bg); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--head); font-weight: 600; border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ci { color: var(--muted); }
table.warnings td:nth-child(-n+3) { white-space: nowrap; }
tr.bad td { background: var(--err-bg); }
tr.uncal td { background: var(--warn-bg); }
table.stats { max-width: 760px; }
table.stats th[scope=row] { font-weight: 500; white-space: nowrap; }
table.counts { max-width: 760px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.error, .badge.failed { background: var(--err-bg); color: var(--err); }
.badge.warning { background: var(--warn-bg); color: var(--warn); }
.badge.info { background: var(--info-bg); color: var(--info); }
figure { margin: 14px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.image-block { display: grid; grid-template-columns: 330px 1fr; gap: 24px; border: 1px solid var(--line); border-radius: 6px; padding: 16px; margin: 16px 0; }
.image-block figure { margin: 0; }
.image-block ul { margin: 6px 0 0; padding-left: 18px; font-size: 13px; }
.note { color: var(--muted); font-size: 12px; }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 10px; color: var(--muted); font-size: 12px; }
@media (max-width: 760px) { main { padding: 16px; } .image-block { grid-template-columns: 1fr; } }
@media print {
  html { background: #fff; } main { padding: 0; max-width: none; }
  .image-block, figure, table.stats, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""

PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="srpsa $version">
<title>$title</title>
<style>$css</style>
</head>
<body>
<main>
$body
</main>
</body>
</html>
"""
)


def page(*, title: str, version: str, body: str) -> str:
    """The full document; ``title`` and ``version`` must already be HTML-escaped."""
    return PAGE.substitute(title=title, version=version, css=CSS, body=body)
