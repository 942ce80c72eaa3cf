"""Help › Getting started: a short guide inside the app."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

GUIDE = """
<h2>Getting started</h2>
<p>The workbench makes a BERT-family model smaller and faster step by step, and measures what
each step cost and bought: the task metric, the <b>bytes of the file you would ship</b>, and the
<b>latency on this machine</b>.</p>
<ol>
<li><b>Model and task</b> (toolbar). The packaged all-MiniLM-L6-v2 and SST-2 are ready to use.
Pick a local Hugging Face folder with <i>File › Open model folder…</i>, or your own data with
<i>File › Use a custom data file…</i> (CSV, TSV, JSON lines, parquet; you map its columns).
The <b>Data</b> tab shows the first rows, the label balance and how precise the dev set is.</li>
<li><b>Chain</b>. Drag steps from the palette on the left into the chain (or select one and press
Enter). Drag to reorder, untick to skip, Delete to remove, Ctrl+D to duplicate. The editor on the
right shows the selected step's settings; <i>Sweep</i> tries several values of a number.
A value a step cannot take is marked in red on its field and its row, with the fix; nothing
runs until it is fixed. Press Shift+F1 and click anything for what it means.</li>
<li><b>Recipe</b> tab: the recipe's name, description, seed and how every variant is measured
(dev examples, latency batch and sequence length, repeats, threads).</li>
<li><b>Run</b> (Ctrl+R). A background worker measures the baseline, then each step's variant.
The Run panel shows each step's progress and time left, the log, and training curves of
fine-tuning, distillation and layer sharing. Esc cancels; finished steps are kept, and an
interrupted run can be resumed. Steps already computed with the same settings are reused.</li>
<li><b>Results</b>. One row per variant; the charts show exactly the rows the table shows, and
every filter (run, task, text) applies to both. Set <i>Best: keep ≥ 99 % of reference</i> and the
smallest variant that keeps that much of its run's reference metric (the baseline, or the first trained variant when the baseline's head is untrained) is starred (★; sizes within 1 %
count as equal, and then the higher metric wins). Hover any point or
bar for its numbers; click it to select its row. Select two or more rows to compare them. Right-
click a row to open its folder or load its run's recipe; <i>Runs…</i> names, tags and deletes runs
and shows their disk use. Export tables (CSV, Markdown, LaTeX) and charts (PNG, SVG).</li>
</ol>
<p>The same recipe runs headless: <code>workbench-cli run recipe.yaml</code>;
<code>workbench-cli runs</code>, <code>show</code>, <code>export</code>, <code>delete</code>,
<code>gc</code> read and manage the same database.</p>
"""


class GettingStartedDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Getting started")
        self.setObjectName("gettingStarted")
        self.resize(640, 560)
        self.text = QTextBrowser()
        self.text.setObjectName("guideText")
        self.text.setHtml(GUIDE)
        self.text.setOpenExternalLinks(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
