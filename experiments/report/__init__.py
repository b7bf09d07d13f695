"""Report rendering: a report dict (DESIGN.md "Report JSON") as Markdown, HTML and charts.

* :mod:`.format` — numbers and words shared by every renderer;
* :mod:`.markdown` — the Markdown report (``xp report --format markdown``);
* :mod:`.html` — the self-contained HTML report and the web UI's report page;
* :mod:`.charts` — report objects → plotly figures (no database, no Flask).
"""
