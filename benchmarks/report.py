"""RESULTS.md from the benchmarks' JSON files: our measurements, the published figures of the two
reproduced systems in columns labelled "published", the issues' targets with met / not met
computed from the measured values, the machine, the date and the command line.

A benchmark whose JSON this invocation did not produce (when it was part of it) is reported as
"not run" with the command to run it — never with numbers from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.published import (
    BACKEND_TARGETS,
    FINETUNE_TARGETS,
    PUBLISHED_SQUAD,
    PUBLISHED_TINYBERT,
    SHAPE_DROP_POINTS,
    SHAPE_FREE_POINTS,
    SQUAD_PAPER,
    STUDENT_RETENTION,
    TARGETS,
    TEACHER_TARGETS,
    TINYBERT_PAPER,
)
from benchmarks.suite import BY_KEY, ROOT, Bench, command, now, rel

REPORT = ROOT / "benchmarks" / "RESULTS.md"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / name
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
    """'met' / 'not met' from the measured value; 'n/a' without one."""
    if value is None:
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "met" if ok else "**not met**"


def _f(value: Any, fmt: str = ".2f", none: str = "—") -> str:
    if value is None:
        return none
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Report:
    results: Path
    manifest: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)  # (area, target, ours, verdict)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, area: str, target: str, ours: str, verdict_: str) -> None:
        self.summary.append((area, target, ours, verdict_))

    def data(self, bench: Bench) -> dict[str, Any] | None:
        """The benchmark's JSON if it may be reported: produced by this invocation, or (when the
        benchmark was not part of it) an existing file, which is then labelled with its date."""
        entry = self.manifest.get("benches", {}).get(bench.key)
        if entry is not None and not entry.get("output_written"):
            return None
        data = load(self.results, bench.outputs[0])
        if data is None and bench.key == "squad":  # bench_squad.py --quick writes *_quick.json
            data = load(self.results, "bench_squad_quick.json")
        return data

    def not_run(self, bench: Bench) -> None:
        entry = self.manifest.get("benches", {}).get(bench.key)
        mode = self.manifest.get("mode", "quick")
        why = f"status: {entry['status']}" + (f", log {entry['log']}" if entry.get("log") else "") if entry else \
            f"no {bench.outputs[0]} in {rel(self.results)}"
        self.add(f"**not run** ({why}). To run it: `python benchmarks/run_all.py{' --quick' if mode == 'quick' else ''} "
                 f"--only {bench.key}` or `PYTHONPATH=. {command(bench, mode, self.results)[0]} "
                 f"{shlex.join(command(bench, mode, self.results)[1:])}`.", "")
        self.target(bench.title, "—", "not run", "n/a")

    def source(self, bench: Bench, data: dict[str, Any]) -> None:
        entry = self.manifest.get("benches", {}).get(bench.key)
        path = self.results / bench.outputs[0]
        written = data.get("written_at")
        when = written or (dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                           if path.exists() else "?")
        if entry:
            self.add(f"_Source: `{rel(path)}` written {entry.get('finished', when)} by `{entry['command']}` ({entry['status']}, "
                     f"{entry['seconds']:.0f} s). Sizes: {_sizes(entry, bench.key)}._", "")
        else:
            env = data.get("environment") or {}
            where = f" on {env['cpu_model']} ({env.get('cores', '?')} cores)" if env.get("cpu_model") else ""
            self.add(f"_Source: `{rel(path)}` ({'written' if written else 'file modified'} {when}{where}); not produced "
                     "by this invocation of run_all (whose machine the header names), so its sizes are the ones stated "
                     "in the file._", "")


def _sizes(entry: dict[str, Any], key: str) -> str:
    """The sizes a run used, as recorded when it ran (older manifests: the suite's current words)."""
    if entry.get("sizes"):
        return str(entry["sizes"])
    bench = BY_KEY.get(key)
    return bench.sizes.get(entry.get("mode", ""), "") if bench else ""


TITLES = {"tinybert": "TinyBERT study: Tables 1-2, pruning curve, int8 speed-up and size ratios",
          "squad": "SQuAD system: Tables 2-5 and n-bit size vs theory",
          "squad-share": "SQuAD system: Table 2 with the whole train part after the merge",
          "squad-sketch": "SQuAD system: Table 5 with the whole train part after sketching",
          "squad-sketch-ls": "SQuAD system: Table 5 again, the sketch fitted by least squares before fine-tuning",
          "sketch-init": "Random sketching end to end: W S^T as published against a least-squares init (SST-2)",
          "sketch-error": "Random sketching: why a sketched model stays at 'no answer' (error against theory)",
          "eval": "Engine throughput vs a plain loop", "cache": "Prefix cache speed-up",
          "queries": "Store queries with 10,000 variants", "gui": "GUI start-up, stall and chart redraw",
          "finetune": "Fine-tuning the packaged model with the shipped defaults (issue 14 targets)",
          "backends": "Deployment backends: torch, ONNX Runtime, OpenVINO side by side (issue 15 targets)"}


def render(results: Path, manifest: dict[str, Any]) -> str:
    """The whole RESULTS.md as a string, from the JSON files in ``results`` and the run manifest."""
    r = Report(results, manifest)
    for key, fn in SECTIONS.items():
        bench = BY_KEY[key]
        r.add(f"## {TITLES[key]}", "")
        data = r.data(bench)
        if data is None:
            r.not_run(bench)
            continue
        r.source(bench, data)
        try:
            fn(r, data)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            r.add(f"**could not be reported**: {bench.outputs[0]} lacks an expected field ({type(exc).__name__}: "
                  f"{exc}).", "")
            r.target(bench.title, "—", "unreadable output", "n/a")
    return "\n".join(_header(manifest) + _summary(r) + _published() + r.lines).rstrip() + "\n"


def section_markdown(key: str, data: dict[str, Any]) -> str:
    """One benchmark's section on its own, as its script writes it beside its JSON: the same
    tables and verdicts as in RESULTS.md, rendered by the same code."""
    r = Report(Path("."), {})
    SECTIONS[key](r, data)
    env = data.get("environment") or {}
    head = [f"# {TITLES[key]} (benchmarks/{BY_KEY[key].script})", ""]
    top = data.get("machine")  # gui.json names the machine at its top level (other files: a dict of facts)
    cpu = env.get("cpu_model") or (top if isinstance(top, str) else None)
    if cpu:
        seconds = data.get("seconds", data.get("wall_s"))
        when = f", {data['date']}" if data.get("date") else ""
        wall = "" if seconds is None else f"; total wall time {seconds / 60:.1f} min"
        head += [f"Machine: {cpu} ({env.get('cores', data.get('cores', '?'))} cores){when}{wall}.", ""]
    return "\n".join(head + r.lines + (_summary(r) if r.summary else [])).rstrip() + "\n"


def write_section(key: str, data: dict[str, Any], json_path: Path) -> str:
    """What every benchmark script writes: its JSON at ``json_path`` and, beside it with the same stem,
    its section of RESULTS.md rendered by :func:`section_markdown`. Returns the Markdown."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    data = {**data, "written_at": now()}  # a clone's file times say when it was checked out, not measured
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    text = section_markdown(key, data)
    json_path.with_suffix(".md").write_text(text, encoding="utf-8")
    return text


def _header(m: dict[str, Any]) -> list[str]:
    mode = m.get("mode")
    lines = ["# Compression Workbench — benchmark results", ""]
    if mode == "quick":
        lines += ["> **QUICK RUN** (`--quick`): smoke-test sizes, far below the published training budgets. The "
                  "figures show the pipeline works end to end on this machine; they are not the full benchmark.", ""]
    elif mode == "full":
        lines += ["> Full suite, with the reduced training sizes stated below (a 2-core CPU, not the papers' GPUs).", ""]
    env = m.get("environment") or {}
    versions = env.get("versions") or {}
    lines += [
        "Generated by `benchmarks/run_all.py` from the JSON in "
        f"`{m.get('results_dir', '?')}`; nothing in the measured columns is typed by hand. Beside it, written by "
        "hand from those files and their logs: `*.notes.md` (how a run went, what it shows) and `candidates/` "
        "(settings measured and adopted or rejected, larger budgets, convergence checks; its README says which).",
        "",
        f"- Date: {m.get('started', '?')} to {m.get('finished', '?')}",
        f"- Command: `{m.get('command', '?')}`",
        f"- Machine (core.measure.environment()): {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores "
        f"({env.get('cores_available', '?')} available), {env.get('machine', '?')}, torch CPU capability "
        f"{env.get('torch_cpu_capability', '?')}, quantized engine {env.get('torch_quantized_engine', '?')}, "
        f"kernel flags {', '.join(env.get('cpu_flags') or []) or '?'}; {env.get('platform', '?')}",
        f"- Software: Python {env.get('python', '?')}, torch {versions.get('torch', '?')}, transformers "
        f"{versions.get('transformers', '?')}, datasets {versions.get('datasets', '?')}",
    ]
    if m.get("load_average"):
        lines.append(f"- Load average (1 min) at start / end: {m['load_average'].get('start', '?')} / "
                     f"{m['load_average'].get('end', '?')} — the machine was shared, so latencies are noisy; "
                     "each section says how its latencies were timed.")
    benches = m.get("benches") or {}
    if benches:
        lines += ["", "Reduced sizes and commands of this run:", "", "| benchmark | sizes | command | status | seconds |",
                  "|---|---|---|---|---:|"]
        for key, e in benches.items():
            b = BY_KEY.get(key)
            sizes = _sizes(e, key)
            lines.append(f"| {b.title if b else key} | {sizes} | `{e.get('command')}` | {e.get('status')} | "
                         f"{_f(e.get('seconds'), '.0f')} |")
    return [*lines, ""]


def _summary(r: Report) -> list[str]:
    lines = ["## Targets from the issues", "", "| area | target | ours | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {t} | {o} | {v} |" for a, t, o, v in r.summary]
    return [*lines, ""]


def _published() -> list[str]:
    p, q = PUBLISHED_TINYBERT, PUBLISHED_SQUAD
    lo, hi = p["int8_faster_pct"]
    return [
        "## Published figures (constants in benchmarks/published.py, not measured here)", "",
        "| paper | figure | published |", "|---|---|---|",
        f"| {TINYBERT_PAPER} | BERT-base size | {p['bert_base_mb']} MB |",
        f"| {TINYBERT_PAPER} | TinyBERT size | {p['tinybert_mb']} MB (pruned: still {p['pruned_mb']} MB) |",
        f"| {TINYBERT_PAPER} | TinyBERT int8 size | {p['tinybert_int8_mb']} MB "
        f"(int8/fp32 = {p['int8_vs_fp32_artifact_ratio']:.3f}) |",
        f"| {TINYBERT_PAPER} | int8 inference time | about {lo}-{hi} % faster (speed-up ~{1 / (1 - lo / 100):.2f}-"
        f"{1 / (1 - hi / 100):.2f}x) |",
        f"| {TINYBERT_PAPER} | pruning | {p['pruning']} |",
        f"| {SQUAD_PAPER} | progressive sharing | {q['layers']} (12->6: F1 {q['f1_6_of_12_layers']}, 12->3: F1 "
        f"{q['f1_3_of_12_layers']}) |",
        f"| {SQUAD_PAPER} | vocabulary 25 % | F1 {q['vocab_25_f1']} |",
        f"| {SQUAD_PAPER} | n-bit | " + "; ".join(f"{b}-bit {v}" for b, v in q["bits"].items()) + " |",
        f"| {SQUAD_PAPER} | random sketching | {q['sketch']} |",
        f"| {SQUAD_PAPER} | final models | {q['final_mb'][0]}-{q['final_mb'][1]} MB |",
        "",
        "Our starting model is the packaged all-MiniLM-L6-v2 (6 layers, 384 wide), not BERT-base: sizes in MB "
        "are not comparable one to one; ratios and the shape of each curve are.",
        "",
    ]


# --- sections ---------------------------------------------------------------------------------
def _pct(metric: float | None) -> str:
    return _f(None if metric is None else 100 * metric, ".1f")


def is_plain_student(variant: str) -> bool:
    """The fp32 3-layer student distilled from the task's own rows (not the augmented one)."""
    return variant.startswith("student (") and "augmented" not in variant


def tinybert_ratios(task: dict[str, Any]) -> dict[str, float | None]:
    """The study's ratios recomputed from the rows shown in Tables 1-2 (the script's own
    ``ratios`` only fill a gap), so every verdict follows from the printed numbers."""
    rows = task.get("rows", [])

    def find(pred: Callable[[str], bool]) -> dict[str, Any] | None:
        return next((row for row in rows if pred(row["variant"])), None)

    teacher = find(lambda v: v.startswith("teacher"))
    student = find(is_plain_student)
    int8 = find(lambda v: v == "student int8")

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
        if a is None or b is None or a.get(key) is None or not b.get(key):
            return None
        return a[key] / b[key]

    mine = {
        "int8_vs_fp32_latency_speedup": ratio(student, int8, "latency_p50_ms"),
        "int8_vs_fp32_artifact_ratio": ratio(int8, student, "artifact_mb"),
        "int8_metric_cost_points": None if student is None or int8 is None else 100 * (student["metric"] - int8["metric"]),
        "student_vs_teacher_metric_retention": ratio(student, teacher, "metric"),
        "student_vs_teacher_artifact_ratio": ratio(student, teacher, "artifact_mb"),
        "student_vs_teacher_latency_speedup": ratio(teacher, student, "latency_p50_ms"),
    }
    given = task.get("ratios", {})
    return {k: v if v is not None else given.get(k) for k, v in mine.items()}


def _tinybert(r: Report, d: dict[str, Any]) -> None:
    p = PUBLISHED_TINYBERT
    tasks = d["tasks"]
    how = ("Every figure was measured by the engine (core.run.runner) as it saved each variant (size: bytes of the "
           "saved artifact) and read back from the study's results database." if d.get("study") or d.get("studies")
           else "Every figure from the reloaded artifact (measured by the script itself, before the benchmarks ran "
           "through the engine).")
    r.add(f"Teacher = MiniLM-L6 fine-tuned; student = its layers 2, 4, 6. {how} Scores x100. Settings (as run):", "")
    for t in tasks:  # a combined file (bench_tinybert.py --combine) carries settings per task
        r.add(f"- {t['task']}: {_tinybert_settings(t.get('settings') or d.get('settings') or {})}")
    r.add("")
    if d.get("latency"):
        r.add(d["latency"], "")
    _recipes_and_cache(r, [d.get("study")] if d.get("study") else d.get("studies") or [])
    for t in tasks:
        for key, use in (t.get("prefix_cache") or {}).items():
            only_teacher = "teacher_and_student_reused" not in use  # the augmented branch trains its own student
            ok = use.get("teacher_reused") if only_teacher else use.get("teacher_and_student_reused")
            r.target(f"TinyBERT {t['task']}", f"recipe '{key}' reuses the teacher{'' if only_teacher else ' and student'}"
                     " (prefix cache)", f"run {use.get('run')}: {len(use.get('cached', []))} cached variant(s)",
                     "met" if ok else "**not met**")
    if any(t.get("teacher_and_students") for t in tasks):
        _teachers_and_students(r, tasks)
    if any((t.get("training") or {}).get("teacher_finetune") or (t.get("training") or {}).get("teacher_ready")
           for t in tasks):
        _teacher_training(r, tasks)
    # Table 1
    variants: list[str] = []
    for t in tasks:
        variants += [row["variant"] for row in t["rows"] if row["variant"] not in variants]
    r.add("### Table 1 — task metric (dev, x100)", "",
          "| variant | " + " | ".join(f"{t['task']} ({t['metric_name']})" for t in tasks) + " |",
          "|---|" + "---:|" * len(tasks))
    for v in variants:
        cells = [_pct(next((row["metric"] for row in t["rows"] if row["variant"] == v), None)) for t in tasks]
        r.add(f"| {v} | " + " | ".join(cells) + " |")
    r.add("", "Published per-task scores are not listed: they belong to a BERT-base teacher and are not among the "
          "recorded anchors.", "")
    # Table 2
    def published_mb(variant: str) -> str:
        if variant.startswith("teacher"):
            return f"{p['bert_base_mb']} (BERT-base)"
        if "int8" in variant:
            return f"{p['tinybert_int8_mb']} (TinyBERT int8)"
        if "pruned" in variant:
            return f"{p['pruned_mb']} (pruned TinyBERT)"
        if variant.startswith("student"):
            return f"{p['tinybert_mb']} (TinyBERT)"
        return "—"

    r.add("### Table 2 — size and latency", "",
          "| task | variant | artifact MB | published MB | params | non-zeros | p50 ms | p90 ms |",
          "|---|---|---:|---:|---:|---:|---:|---:|")
    for t in tasks:
        for row in t["rows"]:
            r.add(f"| {t['task']} | {row['variant']} | {_f(row.get('artifact_mb'))} | {published_mb(row['variant'])} | "
                  f"{_f(row.get('params'), ',')} | {_f(row.get('nonzero_params'), ',')} | "
                  f"{_f(row.get('latency_p50_ms'), '.1f')} | {_f(row.get('latency_p90_ms'), '.1f')} |")
    # pruning curve
    r.add("", "### Pruning curve (the study's Figure 1) — student, global L1", "",
          f"Published: {p['pruning']}; the pruned TinyBERT stayed {p['pruned_mb']} MB on disk.", "",
          "| task | amount | sparsity | metric x100 | change vs student (points) | artifact MB |",
          "|---|---:|---:|---:|---:|---:|")
    for t in tasks:
        student = next((row for row in t["rows"] if is_plain_student(row["variant"])), None)
        for row in t["rows"]:
            if "sparsity" not in row:
                continue
            delta = None if student is None else 100 * (row["metric"] - student["metric"])
            r.add(f"| {t['task']} | {row['variant'].split()[-1]} | {_f(row['sparsity'], '.3f')} | {_pct(row['metric'])} | "
                  f"{_f(delta, '+.2f')} | {_f(row.get('artifact_mb'))} |")
    # ratios
    lo, hi = p["int8_faster_pct"]
    r.add("", "### int8 and student ratios (from the rows above)" if d.get("latency") else
          "### int8 and student ratios (measured side by side in one run)", "",
          "| task | int8/fp32 speed-up | published | int8/fp32 artifact | published | int8 metric cost (points) | "
          "student/teacher metric | student/teacher artifact | published |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in tasks:
        q = tinybert_ratios(t)
        r.add(f"| {t['task']} | {_f(q.get('int8_vs_fp32_latency_speedup'))}x | ~{1 / (1 - lo / 100):.2f}-"
              f"{1 / (1 - hi / 100):.2f}x | {_f(q.get('int8_vs_fp32_artifact_ratio'), '.3f')} | "
              f"{p['int8_vs_fp32_artifact_ratio']:.3f} | {_f(q.get('int8_metric_cost_points'), '+.2f')} | "
              f"{_f(q.get('student_vs_teacher_metric_retention'), '.3f')} | "
              f"{_f(q.get('student_vs_teacher_artifact_ratio'), '.3f')} | {p['student_vs_teacher_artifact_ratio']:.3f} |")
        speed = q.get("int8_vs_fp32_latency_speedup")
        size = q.get("int8_vs_fp32_artifact_ratio")
        cost = q.get("int8_metric_cost_points")
        # every variant scoring exactly the same means a constant predictor (training too short):
        # "int8 costs nothing" and "the student keeps its teacher's accuracy" would then be vacuous
        constant = len(t["rows"]) > 2 and len({row["metric"] for row in t["rows"]}) == 1
        vacuous = "n/a (every variant scores the same: a constant predictor, train longer)"
        disturbed = _disturbed_timing(t["rows"])
        r.target(f"TinyBERT {t['task']}", f"int8 vs fp32 latency >= {TARGETS['int8_speedup']}x (batch 8, seq 128)",
                 f"{_f(speed)}x", disturbed or verdict(speed, TARGETS["int8_speedup"]))
        r.target(f"TinyBERT {t['task']}", f"int8 artifact <= {TARGETS['int8_artifact_ratio']:.2f}x fp32",
                 f"{_f(size, '.3f')}x", verdict(size, TARGETS["int8_artifact_ratio"], at_most=True))
        r.target(f"TinyBERT {t['task']}", f"int8 costs <= {TARGETS['int8_metric_cost']:g} point",
                 f"{_f(cost, '+.2f')}", vacuous if constant else verdict(cost, TARGETS["int8_metric_cost"], at_most=True))
        pub_speed = 1 / (1 - hi / 100)
        r.target(f"TinyBERT {t['task']}", f"int8 speed-up beats the published ~{pub_speed:.2f}x (vs published)",
                 f"{_f(speed)}x", disturbed or verdict(speed, pub_speed))
        r.target(f"TinyBERT {t['task']}", f"int8/fp32 size beats the published {p['int8_vs_fp32_artifact_ratio']:.3f} "
                 "(vs published)", f"{_f(size, '.3f')}", verdict(size, p["int8_vs_fp32_artifact_ratio"], at_most=True))
        if t["task"] == "sst2" and not t.get("teacher_and_students"):  # else judged with its interval above
            keep = q.get("student_vs_teacher_metric_retention")
            r.target("TinyBERT sst2", f"3-layer student keeps >= {TARGETS['student_retention_sst2']:.0%} of teacher "
                     "accuracy", _f(keep, ".3f"), vacuous if constant else verdict(keep, TARGETS["student_retention_sst2"]))
    _torchao_line(r, tasks, d)
    r.add("")


DISTURBED_P90_OVER_P50 = 1.25  # a timing whose p90 is this far above its p50 was interrupted (load, stolen CPU)


def _disturbed_timing(rows: list[dict[str, Any]]) -> str | None:
    """'n/a (...)' when the fp32 or int8 student's timing was disturbed, so no speed-up verdict is drawn
    from it; None when both are steady."""
    wanted = [row for row in rows if row["variant"] in ("student (3 layers)", "student int8")]
    bad = [f"{row['variant']} p90 {row['latency_p90_ms'] / row['latency_p50_ms']:.2f}x its p50" for row in wanted
           if row.get("latency_p50_ms") and row.get("latency_p90_ms")
           and row["latency_p90_ms"] > DISTURBED_P90_OVER_P50 * row["latency_p50_ms"]]
    return f"n/a (timing disturbed: {'; '.join(bad)})" if bad else None


def _tinybert_settings(s: dict[str, Any]) -> str:
    """One task's training and measuring settings, in words."""
    limit = s.get("eval_limit")
    timing = (f"{s.get('latency_rounds')} rounds x {s.get('latency_repeats')} repeats" if "latency_rounds" in s
              else f"{s.get('latency_repeats')} repeats per variant")
    if s.get("teacher") == "shipped finetune defaults":
        # The defaults of the code that ran. Files without them predate version 5: teachers have used the
        # shipped defaults since 2026-12-02 22:54 (commit 52d0896), under versions 3 and 4, both at 1e-4.
        shipped = s.get("teacher_defaults") or {"version": "3 or 4", "lr": 1e-4}
        teacher = (f"teacher fine-tuned with the finetune defaults shipped when it ran (config version "
                   f"{shipped['version']}, lr {shipped['lr']:g}) on the whole training split")
    elif isinstance(s.get("teacher"), dict) and "ready" in s["teacher"]:  # --teacher-ready: trained before the study
        soup = s["teacher"].get("soup")
        teacher = ("teacher given ready-made, no fine-tune in the study: "
                   + (f"a {soup['method']} model soup of {len(soup['members'])} fine-tunes" if soup
                      else f"the model folder {s['teacher']['ready']}"))
    else:  # overridden (a reduced run), or a file from before the teacher used the shipped defaults
        config = s["teacher"] if isinstance(s.get("teacher"), dict) else \
            {"train_size": s.get("train_size"), "epochs": s.get("teacher_epochs"), "lr": s.get("teacher_lr")}
        teacher = (f"training subset {config.get('train_size') or 'all'} examples; teacher "
                   f"{config.get('epochs') or 'default'} epochs, learning rate {config.get('lr') or 'default'}")
        teacher += "".join(f", {name} {value}" for name, value in config.items() if name not in ("train_size", "epochs", "lr"))
    budget = (f"at most {s['distill_steps']} steps per stage (epochs cap {s.get('stage1_epochs')} + "
              f"{s.get('stage2_epochs')})" if s.get("distill_steps") else
              f"{s.get('stage1_epochs')} + {s.get('stage2_epochs')} epochs")
    augment = (f"; augmented student: {s['augment']} rewrites per training sentence (augment.tinybert), the same "
               "step budget" if s.get("augment") else "")
    tokens = (s.get("measure") or {}).get("max_length", 128)
    return (f"{teacher}; distillation {budget}{augment}; dev evaluation {f'{limit} rows' if limit else 'full'}; "
            f"rows of at most {tokens} tokens in distillation and evaluation; "
            f"latency batch 8 x seq 128 on {s.get('threads')} thread(s), {timing}"
            + (" (a reduced run)" if s.get("reduced") else ""))


def _retention(change: dict[str, Any], teacher: dict[str, Any]) -> tuple[float, float, float] | None:
    """What a student keeps of its teacher's metric, with the paired interval of their difference
    carried over (divided by the teacher's value)."""
    base = teacher.get("value")
    if not base or base <= 0 or change.get("value") is None:
        return None
    return 1 + change["value"] / base, 1 + change["low"] / base, 1 + change["high"] / base


def _passes(training: dict[str, Any]) -> str:
    """How often the step budget could show each training sentence (stage 2 of the plain student):
    below 1, augmented rows only replace originals the student would not have seen anyway."""
    stage = (training.get("distill") or {}).get("stage2") or {}
    sentences = (stage.get("training_data") or {}).get("sentences")
    if not sentences or stage.get("examples_seen") is None:
        return "—"
    return f"{stage['examples_seen']:,} / {sentences:,} = {stage['examples_seen'] / sentences:.2f}"


def _teachers_and_students(r: Report, tasks: list[dict[str, Any]]) -> None:
    """Issue 20's table: did each teacher learn and reach its target, what each student keeps of it,
    with and without augmented rows, and what augmentation adds (paired, on the same dev examples)."""
    r.add("### Teachers and students: did the teacher learn, what the students keep, what augmentation adds", "",
          "Every value with its 95 % bootstrap interval over the dev examples; changes are paired (the same examples). "
          "'Keeps' = student / teacher, its interval the paired interval of their difference over the teacher's "
          "value. Majority = the train split's majority class predicted everywhere (STS-B: a constant has no "
          "correlation, so the teacher's interval must lie above 0). Both students train for the same number of "
          "steps; the last column says how many times that budget could show each training sentence.", "",
          "| task | metric | teacher [95 % CI] | target | verdict | majority [95 % CI] | teacher learned | "
          "student [95 % CI] | keeps | student, augmented [95 % CI] | keeps | augmentation adds [95 % CI] | "
          "rows per stage / training sentences |",
          "|---|---|---|---:|---|---|---|---|---:|---|---:|---|---:|")
    for t in tasks:
        c = t.get("teacher_and_students")
        if not c:
            continue
        task, teacher = t["task"], c["teacher"]
        floor = TEACHER_TARGETS.get(task)
        reached = ("n/a" if floor is None or teacher.get("value") is None else
                   interval_verdict(teacher["value"], teacher["low"], teacher["high"], floor))
        majority = (c.get("teacher_vs_trivial") or {}).get("majority")
        apart = (teacher["low"] > majority["high"]) if majority else (teacher["low"] > 0)
        margin = (c.get("teacher_vs_trivial") or {}).get("margin") or {}
        words = ("yes, intervals apart", "**no**, intervals overlap") if majority else \
            ("yes, interval above 0", "**no**, interval reaches 0")
        learned = words[0 if apart else 1] + \
            f" (margin {_interval(margin.get('value'), margin.get('low'), margin.get('high'), '+.3f')})"
        keeps, cells = {}, []
        for key in ("student", "augmented"):
            kept = _retention(c[f"{key}_vs_teacher"], teacher) if key in c else None
            keeps[key] = kept
            cells += ["—", "—"] if key not in c else [_interval(c[key]["value"], c[key]["low"], c[key]["high"]),
                                                      "—" if kept is None else f"{kept[0]:.1%} [{kept[1]:.1%}, {kept[2]:.1%}]"]
        adds = c.get("augmented_vs_student")
        added = "—" if not adds else (_interval(adds["value"], adds["low"], adds["high"], "+.3f") +
                                      (" within noise" if adds["low"] <= 0 <= adds["high"] else ""))
        r.add(f"| {task} | {c['metric']} | {_interval(teacher['value'], teacher['low'], teacher['high'])} | "
              f"{_f(floor, '.2f')} | {reached} | "
              f"{'—' if not majority else _interval(majority['value'], majority['low'], majority['high'])} | "
              f"{learned} | " + " | ".join(cells) + f" | {added} | {_passes(t.get('training') or {})} |")
        area = f"TinyBERT {task}"
        if floor is not None:
            r.target(area, f"teacher {c['metric']} >= {floor:.2f} (issue 20)",
                     _interval(teacher["value"], teacher["low"], teacher["high"]), reached)
        r.target(area, "teacher clearly beats its majority class (intervals apart)", learned,
                 "met" if apart else "**not met**")
        for key, words in (("student", "without"), ("augmented", "with")):
            kept = keeps.get(key)
            if key in c:  # keeping a teacher that learned nothing says nothing
                r.target(area, f"3-layer student keeps >= {STUDENT_RETENTION:.0%} of its teacher, {words} augmentation",
                         "—" if kept is None else f"{kept[0]:.1%} [{kept[1]:.1%}, {kept[2]:.1%}]",
                         "n/a (the teacher did not learn)" if not apart else
                         "n/a" if kept is None else interval_verdict(*kept, STUDENT_RETENTION))
    r.add("")


def _trend_words(trend: dict[str, Any] | None) -> tuple[str, str]:
    """(the change over the second half of training with its interval, the verdict) of a convergence record."""
    if not trend:
        return "not recorded", "not checked (run predates the check)"
    change = (f"{trend['from_value']:.3f} -> {trend['to_value']:.3f} (steps {trend['from_step']} -> {trend['to_step']}), "
              + _interval(trend["change"], trend["change_low"], trend["change_high"], "+.3f"))
    if trend.get("rolled_back"):
        return change, f"no: past its best, rolled back to step {trend['from_step']}"
    return change, {"improving": "**yes**, still improving", "plateau": "no gain beyond noise",
                    "declining": "no: lost ground"}[trend["verdict"]]


def _ready_teacher_row(r: Report, task: str, ready: dict[str, Any]) -> None:
    """A teacher trained before the study (--teacher-ready): a soup's members and their shared start, each
    with its budget and second-half trend, judged together; any other ready folder is named, not judged."""
    soup = ready.get("soup")
    if not soup:
        r.add(f"| {task} | given ready-made ({ready['ready']}) | — | — | not recorded | not recorded |")
        return
    start = soup.get("start") or {}
    records = soup.get("member_training") or []
    if len(records) != len(soup["members"]) or not all(records):
        r.add(f"| {task} | a {soup['method']} soup of {len(soup['members'])} | — | — | "
              f"{sum(1 for x in records if x)} of {len(soup['members'])} members' training recorded | not judged |")
        return
    named = ([(f"first on {start.get('task')}", start["training"])] if start.get("training") else []) + \
        [(f"member {i}", x) for i, x in enumerate(records)]
    runs = [x for _, x in named]
    trends = [x.get("convergence") for x in runs]
    words = [(who, *_trend_words(x)) for (who, _), x in zip(named, trends, strict=True)]
    steps = sorted({x["steps"] for x in records})
    budget = (f"{len(soup['members'])} x {'/'.join(f'{n:,}' for n in steps)}, a {soup['method']} soup"
              + (f", all after {start['training']['steps']:,} on {start.get('task')}" if start.get("training") else ""))
    wall, cpu = sum(x["seconds"] for x in runs), sum(x["cpu_seconds"] for x in runs)
    r.add(f"| {task} | {budget} | {wall / 60:.1f} / {cpu / 60:.1f} (summed over its runs) | — | "
          + "; ".join(f"{who}: {change}" for who, change, _ in words) + " | "
          + "; ".join(f"{who}: {verdict}" for who, _, verdict in words) + " |")
    if runs and all(trends):
        rising = [x for x in trends if x["verdict"] == "improving"]
        r.target(f"TinyBERT {task}", "teacher no longer gaining beyond noise when its budget ran out "
                 "(issue 20: trained to convergence)",
                 f"a soup of {len(soup['members'])} fine-tunes from one start, {cpu / 60:.1f} CPU min in all; second "
                 "halves " + "; ".join(f"{x['change']:+.3f} [{x['change_low']:+.3f}, {x['change_high']:+.3f}]"
                                       for x in trends),
                 "**not met** (still improving)" if rising else "met")


def _teacher_training(r: Report, tasks: list[dict[str, Any]]) -> None:
    """Each teacher's budget and whether it was still gaining when the budget ran out: its held-out scores
    through training and the paired change over the second half (core.steps.training.convergence)."""
    r.add("### Teachers' training: budget and convergence", "",
          "The fine-tune scores its held-out slice (10 % of the training split, at most 500 rows) 8 times and at "
          "the end. The second half of training = the final weights against the scoring nearest half-way, paired "
          "on the held-out rows (95 % interval); still improving = a gain beyond noise, so the budget ran out "
          "before the teacher converged. No gain beyond noise on a few hundred rows does not prove nothing was "
          "left to gain: the interval says how much could have been. A teacher fine-tuned on another task first "
          "(QNLI before RTE) is judged on both stages. Runs from before this check was recorded show their "
          "held-out scores only; the shipped defaults re-run with it are in `results/candidates/README.md` "
          "(\"Did the teachers converge?\").", "",
          "| task | steps (epochs seen) | wall / CPU min | held-out scores, step: value | second half of training "
          "[95 % CI] | still improving at the end? |",
          "|---|---:|---:|---|---|---|")
    for t in tasks:
        ready = (t.get("training") or {}).get("teacher_ready")
        if ready:
            _ready_teacher_row(r, t["task"], ready)
            continue
        tf = (t.get("training") or {}).get("teacher_finetune")
        if not tf:
            continue
        scores = ", ".join(f"{int(step)}: {value:.3f}" for step, value in tf.get("held_out_scores") or [])
        change, verdict = _trend_words(tf.get("convergence"))
        first = tf.get("first_on_task") or {}
        trends = [tf.get("convergence")]
        budget = f"{tf['steps']:,}" + ("" if tf.get("epochs_seen") is None else f" ({tf['epochs_seen']:.2f})")
        if first:
            first_change, first_verdict = _trend_words(first.get("convergence"))
            budget += f" after {first.get('steps', 0):,} on {first.get('task')}"
            change += f"; first on {first.get('task')}: {first_change}"
            verdict += f"; first on {first.get('task')}: {first_verdict}"
            trends.append(first.get("convergence"))
        wall = tf["seconds"] + first.get("seconds", 0.0)
        cpu = tf["cpu_seconds"] + first.get("cpu_seconds", 0.0)
        r.add(f"| {t['task']} | {budget} | {wall / 60:.1f} / {cpu / 60:.1f} | {scores or '—'} | {change} | {verdict} |")
        if all(trends):
            rising = [x for x in trends if x["verdict"] == "improving"]
            r.target(f"TinyBERT {t['task']}", "teacher no longer gaining beyond noise when its budget ran out "
                     "(issue 20: trained to convergence)",
                     f"{tf['steps']:,} steps, {cpu / 60:.1f} CPU min; second half "
                     + "; ".join(f"{x['change']:+.3f} [{x['change_low']:+.3f}, {x['change_high']:+.3f}]" for x in trends),
                     "**not met** (still improving)" if rising else "met")
    r.add("")


def _torchao_line(r: Report, tasks: list[dict[str, Any]], d: dict[str, Any]) -> None:
    """The other int8 variants beside torch's default, from the same rows (when the run measured them)."""
    kinds = {"student int8 (torchao)": "torchao backend (`backend: torchao`, Int8DynamicActivationInt8WeightConfig, "
                                       "eager mode)",
             "student int8 (8-bit activations)": "8-bit activations (`activation_range: full`)"}
    for variant, words in kinds.items():
        parts = []
        for t in tasks:
            by = {row["variant"]: row for row in t["rows"]}
            student, other = by.get("student (3 layers)"), by.get(variant)
            if student is None or other is None or not other.get("latency_p50_ms"):
                continue
            parts.append(f"{t['task']} {student['latency_p50_ms'] / other['latency_p50_ms']:.2f}x faster than fp32, "
                         f"artifact {other['artifact_mb'] / student['artifact_mb']:.3f}x, metric "
                         f"{_f(100 * (other['metric'] - student['metric']), '+.2f')} points")
        if parts:
            r.add("", f"{words}, measured in the same {'study' if d.get('latency') else 'run'}: " + "; ".join(parts) + ".")


def _recipes_and_cache(r: Report, studies: list[dict[str, Any] | None]) -> None:
    """The recipes a study ran through the engine, its database, and what the prefix cache reused."""
    for study in studies:
        if not study:
            continue
        r.add(f"Recipes, run through the engine into `{rel(Path(study['database']))}`"
              + (" (an earlier database kept with --reuse)" if study.get("reused_database") else "") + ":", "")
        firsts: dict[tuple[Any, Any], list[dict[str, Any]]] = {}  # (model, task) -> its first recipe's chain
        for run in study.get("recipes", []):
            steps = run["recipe"]["chain"]
            first = firsts.setdefault((run["recipe"].get("model"), run["recipe"].get("task")), steps)
            shared = 0 if first is steps else next(
                (i for i, (a, b) in enumerate(zip(first, steps, strict=False)) if a != b), min(len(first), len(steps)))
            chain = " -> ".join(_step_words(e) for e in steps[shared:])
            if shared:
                chain = f"the first recipe's first {shared} step(s), then {chain}"
            cached = run.get("cached") or []
            r.add(f"- {run['key']} (run {run['run_id']}, {run['seconds']:.0f} s): {chain}; "
                  + (f"{len(cached)} of {run['variants']} variants reused from the cache ({', '.join(cached)})"
                     if cached else f"all {run['variants']} variants computed"))
        r.add("")


def _step_words(entry: dict[str, Any]) -> str:
    """A chain entry in a few words: its id and the settings the study chose (swept lists kept)."""
    config = entry.get("config") or {}
    shown = ", ".join(f"{k}={v}" for k, v in config.items() if v is not None)
    return f"{entry['step']}({shown})" if shown else entry["step"]


def _score(row: dict[str, Any]) -> float | None:
    """The row's headline score in points: SQuAD F1, else accuracy x100."""
    if row.get("f1") is not None:
        return float(row["f1"])
    if row.get("accuracy") is not None:
        return 100 * float(row["accuracy"])
    return None


def _qa_metric(row: dict[str, Any]) -> str:
    """F1 / EM at the null threshold 0 (the official headline), then HasAns F1 and the best-threshold
    F1 when recorded: with little training the null answer wins everywhere, and only these two
    still show what a compression step does to the spans."""
    text = f"F1 {row['f1']:.1f} / EM {row['exact']:.1f}"
    for key, name in (("HasAns_f1", "HasAns F1"), ("best_f1", "best-threshold F1")):
        if row.get(key) is not None:
            text += f" · {name} {row[key]:.1f}"
    return text


def _squad_published(row: dict[str, Any]) -> str:
    q = PUBLISHED_SQUAD
    if row["task"] != "squad_v2":
        return "—"
    table, variant = row["table"], row["variant"]
    if table == "layers" and variant.startswith("3 "):
        return f"F1 {q['f1_6_of_12_layers']} (12->6 layers, half depth)"
    if table == "vocab" and variant.rstrip("%") in ("25", "25.0"):
        return f"F1 {q['vocab_25_f1']}"
    if table == "bits":
        bits = int(variant.split()[0])
        return q["bits"].get(bits, "—")
    if table == "sketch" and "fine-tuned" in variant:
        return q["sketch"]
    return "—"


def _squad_table(r: Report, rows: list[dict[str, Any]], starts: dict[str, dict[str, Any]], *,
                 step_costs: bool = False) -> None:
    """One table; ``step_costs`` adds what each row cost against the row before it (a progressive schedule:
    the cost of each merge), the first against the start."""
    step = " change vs the row before (points) |" if step_costs else ""
    r.add(f"| task | variant | params | artifact MB | % smaller | score | change vs start (points) |{step} p50 ms | "
          "published |", "|---|---|---:|---:|---:|---|---:|" + ("---:|" if step_costs else "") + "---:|---|")
    before: dict[str, float | None] = {task: _score(start) for task, start in starts.items()}
    for row in rows:
        start = starts.get(row["task"])
        score = _score(row)
        delta = None if start is None or score is None or _score(start) is None else score - _score(start)
        previous = before.get(row["task"])
        cost = "" if not step_costs else \
            f" {_f(None if score is None or previous is None else score - previous, '+.1f')} |"
        before[row["task"]] = score
        metric = _qa_metric(row) if row.get("f1") is not None else f"acc {_pct(row.get('accuracy'))}"
        r.add(f"| {row['task']} | {row['variant']} | {_f(row.get('params'), ',')} | {_f(row.get('artifact_mb'))} | "
              f"{_f(row.get('smaller_pct'), '.1f')} | {metric} | {_f(delta, '+.1f')} |{cost} "
              f"{_f(row.get('latency_p50_ms'), '.1f')} | {_squad_published(row)} |")
    r.add("")


def _squad_engine(r: Report, d: dict[str, Any]) -> None:
    """The recipes, the database, how latency was timed, and whether every table reused the start."""
    _recipes_and_cache(r, [d.get("study")])
    if d.get("latency"):
        r.add(d["latency"], "")
    for name, use in (d.get("prefix_cache") or {}).items():
        r.target(f"SQuAD-system {name.split()[0]}", f"recipe '{name}' reuses the fine-tuned start (prefix cache)",
                 f"run {use.get('run')}: {len(use.get('cached', []))} cached variant(s)",
                 "met" if use.get("start_reused") else "**not met**")


def _squad_retuned(r: Report, d: dict[str, Any], table: str, change: str, epochs: Any = 1.0) -> None:
    """One SQuAD table again, with the whole train part (not 800 questions) of fine-tuning after ``change``."""
    s = d.get("settings", {})
    rows = d["rows"]
    starts = {row["task"]: row for row in rows if row["table"] == "start"}
    tuned = sorted({row.get("tune_examples") for row in rows if row["table"] == table} - {None, 0})
    r.add(f"Settings (as run): the SQuAD start trained on {_squad_questions(d)} questions x {s.get('squad_epochs')} "
          f"epoch; {change}, then {', '.join(map(str, tuned)) or '?'} questions x {epochs} epoch of fine-tuning; evaluated "
          f"on {s.get('squad_eval')} eval-part questions; max length {s.get('squad_max_length')}.", "")
    _squad_engine(r, d)
    _squad_table(r, [row for row in rows if row["table"] == table], starts, step_costs=table == "layers")


def _squad_share(r: Report, d: dict[str, Any]) -> None:
    _squad_retuned(r, d, "layers", "adjacent layers merged 6 -> 3 with distillation from the model before the merge",
                   d.get("settings", {}).get("share_epochs"))


def _squad_sketch(r: Report, d: dict[str, Any]) -> None:
    s = d.get("settings", {})
    _squad_retuned(r, d, "sketch", f"Linear layers sketched (m = {s.get('sketch_attention', 256)} for attention "
                   f"projections, {s.get('sketch_ffn_out', 512)} for the FFN output)")


def _paired_change(row: dict[str, Any], scale: float) -> str:
    """A row's change against its parent in points, with its paired interval and whether it is within noise."""
    low, high = row.get("delta_ci95") or (None, None)
    if row.get("delta_vs_parent") is None:
        return "—"
    if low is None:
        return f"{scale * row['delta_vs_parent']:+.1f}"
    return (_interval(scale * row["delta_vs_parent"], scale * low, scale * high, "+.1f")
            + (" (within noise)" if low <= 0 <= high else ""))


def _squad_sketch_ls(r: Report, d: dict[str, Any]) -> None:
    """bench_squad.py --parts squad-sketch with sketch_init=least_squares: the SQuAD table, then each row's F1
    with its interval and its paired change against the start, and whether the sketch now answers."""
    _squad_sketch(r, d)
    rows = [row for row in d["rows"] if row["table"] == "sketch"]
    r.add(f"Least-squares init: the out x m weights fitted to the dense layers' outputs on "
          f"{d.get('settings', {}).get('sketch_calibration')} training rows (the same S as W S^T). Intervals: 95 % "
          "bootstrap over the evaluated questions; the change is paired against the start on the same questions.", "",
          "| variant | F1 [95 % CI] | HasAns F1 | change in F1 vs start, points [paired 95 % CI] | flags |",
          "|---|---|---:|---|---|")

    def change(row: dict[str, Any]) -> str:
        return _paired_change(row, scale=1.0)  # SQuAD's F1 is in points already

    for row in rows:
        low, high = (row.get("intervals") or {}).get("f1") or (None, None)
        f1 = _f(row.get("f1"), ".1f") + (f" [{low:.1f}, {high:.1f}]" if low is not None else "")
        r.add(f"| {row['variant']} | {f1} | {_f(row.get('HasAns_f1'), '.1f')} | {change(row)} | "
              f"{', '.join(row.get('flags') or []) or '—'} |")
    r.add("")
    fitted = next((row for row in rows if "least-squares" in row["variant"] and "fine-tuned" in row["variant"]), None)
    low, high = (fitted or {}).get("delta_ci95") or (None, None)
    if fitted is None or fitted.get("delta_vs_parent") is None or low is None:
        r.target("Sketching on SQuAD (issue 20)", "fine-tuned sketch from a least-squares init: no loss vs the start",
                 "not run", "n/a")
        return
    start = next((row for row in d["rows"] if row["table"] == "start"), {})
    answers = (fitted.get("HasAns_f1") or 0) > 0
    weak_start = "did_not_learn" in (start.get("flags") or [])
    moved = "within" if low <= 0 <= high else ("below" if high < 0 else "above")
    r.add(f"**Reading.** From the least-squares init the fine-tuned sketch "
          f"{'answers (HasAns F1 ' + _f(fitted.get('HasAns_f1'), '.1f') + ')' if answers else 'still answers nothing (HasAns F1 0)'}"
          f" and its F1 moves {change(fitted)} points against the start: "
          + {"within": "no loss beyond noise",
             "below": "a loss beyond noise",
             "above": "a gain beyond noise"}[moved]
          + f". On the answerable questions alone it reaches HasAns F1 {_f(fitted.get('HasAns_f1'), '.1f')} against the "
            f"start's {_f(start.get('HasAns_f1'), '.1f')}."
          + (" The start itself is flagged 'did not learn' (it does not beat always answering 'no answer' beyond "
             "noise on these questions), so a change against it cannot confirm the paper's claim."
             if weak_start else ""), "")
    verdict = {"within": "met (within noise)", "below": "**not met** (a loss beyond noise)",
               "above": "met (a gain beyond noise)"}[moved]
    r.target("Sketching on SQuAD (issue 20)", "fine-tuned sketch from a least-squares init: no loss vs the start",
             f"{change(fitted)} F1 points; HasAns F1 {_f(fitted.get('HasAns_f1'), '.1f')} (start "
             f"{_f(start.get('HasAns_f1'), '.1f')})",
             "inconclusive: the start did not learn" if weak_start else verdict)


def _sketch_init(r: Report, d: dict[str, Any]) -> None:
    """bench_squad.py --parts sst2-sketch with both inits: the same start sketched with the same S, its
    weights W S^T (the paper) or fitted by least squares, each without and with fine-tuning."""
    s = d.get("settings", {})
    rows = d["rows"]
    start = next(row for row in rows if row["table"] == "start")
    r.add(f"Settings (as run): SST-2 start fine-tuned on {s.get('sst2_train')} examples x {s.get('sst2_epochs')} epoch "
          f"(lr {s.get('lr')}, {s.get('sst2_max_length')} tokens); Linear layers sketched (m = "
          f"{s.get('sketch_attention')} for attention projections, {s.get('sketch_ffn_out')} for the FFN output) with "
          f"the same S; the out x m weight either W S^T (product, the paper) or fitted by least squares to the dense "
          f"layer's outputs on {s.get('sketch_calibration')} training rows (least-squares init); then "
          f"{s.get('sketch_train')} training examples x 1 epoch of fine-tuning at lr {s.get('lr')} (the control row: the "
          f"dense start given the same fine-tuning); the whole dev set "
          f"({start.get('eval_examples')} sentences). Intervals: 95 % bootstrap over the dev examples; the change is "
          "paired against the start on the same sentences.", "")
    _squad_engine(r, d)
    r.add("| variant | params | artifact MB | accuracy [95 % CI] | change vs start, points [paired 95 % CI] | flags |",
          "|---|---:|---:|---|---|---|")

    def acc(row: dict[str, Any]) -> str:
        low, high = (row.get("intervals") or {}).get("accuracy") or (None, None)  # older rows carry none
        return f"{_pct(row.get('accuracy'))}" + (f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None else "")

    def points(value: float, low: float, high: float) -> str:
        return _interval(100 * value, 100 * low, 100 * high, "+.1f")

    def change(row: dict[str, Any]) -> str:
        return _paired_change(row, scale=100.0)  # accuracy as a fraction, shown in points

    for row in rows:
        r.add(f"| {row['variant']} | {_f(row.get('params'), ',')} | {_f(row.get('artifact_mb'))} | {acc(row)} | "
              f"{change(row) if row['table'] != 'start' else '—'} | {', '.join(row.get('flags') or []) or '—'} |")
    r.add("")
    by = {row["variant"]: row for row in rows}
    fitted, paper = by.get("sketched (least-squares init), fine-tuned"), by.get("sketched, fine-tuned")
    if not (fitted and paper and fitted.get("delta_vs_parent") is not None and None not in fitted["delta_ci95"]):
        r.target("Sketching (issue 20)", "fine-tuned sketch from a least-squares init: no loss vs the start",
                 "not run", "n/a")
        return
    low, high = fitted["delta_ci95"]
    moved = "within" if low <= 0 <= high else ("below" if high < 0 else "above")
    verdict = {"within": "consistent with the published 'no loss after fine-tuning': the paired interval includes 0 "
                         f"(a loss of more than {-100 * low:.1f} points is ruled out)",
               "below": f"a loss of {-100 * fitted['delta_vs_parent']:.1f} points beyond noise",
               "above": f"a gain of {100 * fitted['delta_vs_parent']:.1f} points beyond noise"}[moved]
    control = by.get("dense, fine-tuned again (control)")
    paired = next((p for p in d.get("paired", []) if p.get("row") == fitted["variant"]
                   and p.get("reference") == (control or {}).get("variant")), None)
    budget = ""
    if control and control.get("accuracy") is not None:
        budget = (f" The dense start given the same fine-tuning (the control row) reaches {_pct(control.get('accuracy'))}, "
                  f"{change(control)} points against the start")
        if paired:
            budget += (f": at an equal training budget the sketched model is "
                       f"{points(paired['value'], paired['low'], paired['high'])} points from the dense one (paired on "
                       f"the same {paired['examples']} sentences; "
                       f"{'within noise' if paired['low'] <= 0 <= paired['high'] else 'beyond noise'})")
        budget += "; the start itself was not trained to convergence, so 'vs the start' flatters the sketch."
    r.add(f"**Reading.** Starting from W S^T, fine-tuning ends at {_pct(paper.get('accuracy'))} (the start: "
          f"{_pct(start.get('accuracy'))}); starting from the least-squares fit, at {_pct(fitted.get('accuracy'))}: "
          f"{verdict}.{budget}", "")
    r.target("Sketching (issue 20)", "fine-tuned sketch from a least-squares init: no loss vs the start (the paper's claim)",
             f"{change(fitted)} points (from W S^T: {change(paper)})",
             {"within": "met (within noise)", "below": "**not met** (a loss beyond noise)",
              "above": "met (a gain beyond noise)"}[moved])
    if paired:
        r.target("Sketching (issue 20)", "the same against the dense start given the same fine-tuning (paired)",
                 f"{points(paired['value'], paired['low'], paired['high'])} points",
                 "within noise" if paired["low"] <= 0 <= paired["high"] else
                 ("**a loss beyond noise**" if paired["high"] < 0 else "a gain beyond noise"))


def _sketch_error(r: Report, d: dict[str, Any]) -> None:
    """benchmarks/sketch_error.py: each sketched layer's error against the theory for m and n, the whole
    model's drift per recipe, and what follows from them (every figure read from the JSON)."""
    import numpy as np

    from benchmarks.sketch_error import markdown

    r.add(*markdown(d).splitlines()[2:])  # its own heading is replaced by the report's
    layers = list(d["layers"].values())
    gap = max(abs(x["rel_frobenius_mean"] / x["rel_frobenius_expected"] - 1) for x in layers)
    under = all(x["rel_frobenius_rms"] <= x["rel_frobenius_bound"] for x in layers)
    low = min(x["rel_frobenius_mean"] for x in layers)
    spread = min(x["spread"] for x in layers)
    best = max(x["best_trained_rel"] for x in layers)
    drift = d["drift"]
    paper = next(v for k, v in drift.items() if k.startswith("paper:"))
    calibrated = next((v for k, v in drift.items() if "other sentences" in k), None)
    need_m = 2 * (spread / 0.1) ** 2
    roots = ", ".join(f"{np.sqrt(n):.1f}" for n in sorted({x["n"] for x in layers}))
    mp_gap = max(abs(x["op_sts_minus_i_mean"] / x["op_sts_minus_i_mp"] - 1) for x in layers)
    r.add(
        "",
        "**Findings.** (1) The sketch behaves exactly as theory says: the measured relative error of every "
        f"layer is within {gap:.0%} of the exact expectation for a Rademacher S, and "
        f"{'below' if under else 'NOT below'} the JL/AMM bound. (2) That error is large for this model: at the "
        f"paper's sizes no layer is below {low:.2f} of its own output, because the bound scales with "
        f"||W||_F ||X||_F / ||W X||_F, which is at least {spread:.1f} here (sqrt(n) = "
        f"{roots} for inputs with no preferred direction), "
        "not with ||W X||_F; a relative error of 0.1 would need m of about "
        f"2 x ({spread:.1f} / 0.1)^2 = {need_m:,.0f}, far above n. In operator norm, S^T S - I has norm "
        f"(1 + sqrt(n/m))^2 - 1 (Marchenko-Pastur; measured within {mp_gap:.0%}), so the sketch is no "
        "near-isometry for any m < n. (3) Compounded over 6 blocks x 5 sketched Linears, the sketched model's "
        f"last hidden state is unrelated to the dense one (cosine {paper['cosine_mean']:.3f}, relative error "
        f"{paper['rel_error']:.2f}): the fine-tuning that follows starts from a network that has lost what the "
        "start learned, and the fine-tuning of Table 5 (lr 5e-5, 1 epoch) settles on the majority answer of "
        "SQuAD 2.0, 'no answer' (HasAns F1 0.0 there). (4) The layers are not "
        "beyond repair through the same S: a W' fitted by least squares reaches a held-out error of at most "
        f"{best:.2f} per layer"
        + (f", and initialising every sketched layer that way (from the activations of other sentences) keeps "
           f"cosine {calibrated['cosine_mean']:.3f} for the whole model" if calibrated else "")
        + ". So the published 'no loss after fine-tuning' is not reproduced with W S^T as the starting point on "
        "this model; it needs W S^T re-fitted (least squares on activations) or a far longer fine-tuning than "
        "the desktop budget. The step offers that re-fit (`init: least_squares`); the section 'Random sketching end "
        "to end' measures a fine-tuning that starts from it.",
        "")


def _squad_questions(d: dict[str, Any]) -> int:
    """Questions the SQuAD start trained on: the setting is a cap, the train part may hold fewer."""
    if "squad_train_questions" in d:
        return int(d["squad_train_questions"])
    sys.path.insert(0, str(ROOT))
    from core.tasks import get_task

    return min(int(d.get("settings", {}).get("squad_train", 0)), get_task("squad_v2").load("train").num_rows)


def _squad(r: Report, d: dict[str, Any]) -> None:
    s = d.get("settings", {})
    rows = d["rows"]
    present = {row["task"] for row in rows}
    said = []
    if "sst2" in present:
        said.append(f"SST-2 {s.get('sst2_train')} training examples x {s.get('sst2_epochs')} epoch")
    if "squad_v2" in present:
        said.append(f"SQuAD 2.0 {_squad_questions(d)} training questions x {s.get('squad_epochs')} epoch, evaluated "
                    f"on {s.get('squad_eval')} questions of the eval part (bundled dev file split by article); "
                    f"{s.get('share_train')} questions of fine-tuning after each merge, {s.get('sketch_train')} after "
                    f"sketching; max length {s.get('squad_max_length')}")
    r.add("Settings (reduced training, as run): " + "; ".join(said or ["?"]) + ".", "")
    _squad_engine(r, d)
    starts = {row["task"]: row for row in rows if row["table"] == "start"}
    titles = {"layers": "Table 2 — layers after progressive sharing", "vocab": "Table 3 — vocabulary reduction",
              "bits": "Table 4 — linear n-bit quantization (per-tensor min/max)", "sketch": "Table 5 — random sketching"}
    for table, title in titles.items():
        chosen = [row for row in rows if row["table"] == table]
        r.add(f"### {title}", "")
        if not chosen:
            r.add("not run (no rows of this table in the JSON).", "")
            continue
        _squad_table(r, chosen, starts, step_costs=table == "layers")
    # starting model and smallest result vs the paper's final sizes
    final = [row for row in rows if row["table"] != "start" and row.get("artifact_mb") is not None]
    if final:
        lo, hi = PUBLISHED_SQUAD["final_mb"]
        smallest = min(final, key=lambda row: row["artifact_mb"])
        said = [f"Smallest artifact: {smallest['task']} {smallest['table']} {smallest['variant']} "
                f"{smallest['artifact_mb']:.2f} MB"]
        for task, start in starts.items():  # the smallest that still scores like its start
            base = _score(start)
            kept = [row for row in final if row["task"] == task and base is not None and _score(row) is not None
                    and _score(row) >= base - SHAPE_FREE_POINTS]
            if kept:
                best = min(kept, key=lambda row: row["artifact_mb"])
                said.append(f"smallest {task} within {SHAPE_FREE_POINTS:g} point of its start: {best['table']} "
                            f"{best['variant']} {best['artifact_mb']:.2f} MB")
        r.add("; ".join(said) + f" (published final models: {lo}-{hi} MB, from BERT-base).", "")
    # qualitative shape of Table 4
    for task, start in starts.items():
        bits = {int(row["variant"].split()[0]): _score(row) for row in rows if row["table"] == "bits" and row["task"] == task}
        base = _score(start)
        if not bits or base is None:
            continue
        free = [b for b in (16, 10) if b in bits]
        low = [b for b in bits if b <= 6]
        free_ok = all(bits[b] is not None and bits[b] >= base - SHAPE_FREE_POINTS for b in free) if free else None
        drop_ok = (bits[min(low)] is not None and bits[min(low)] <= base - SHAPE_DROP_POINTS) if low else None
        ours = ", ".join(f"{b}-bit {_f(None if bits[b] is None else bits[b] - base, '+.1f')}" for b in sorted(bits, reverse=True))
        shape = {True: "met", False: "**not met**", None: "n/a"}
        if start.get("HasAns_f1") is not None and start["HasAns_f1"] < 1.0:
            # a QA model that answers "no answer" everywhere: every width scores the no-answer share
            free_ok = drop_ok = None
            shape[None] = "n/a (the starting QA model answers 'no answer' everywhere: train longer)"
        r.target(f"SQuAD-system {task}", f"n-bit shape: 16/10-bit within {SHAPE_FREE_POINTS:g} point of start",
                 ours, shape[free_ok])
        r.target(f"SQuAD-system {task}", f"n-bit shape: lowest width <= 6 bits drops >= {SHAPE_DROP_POINTS:g} points",
                 ours, shape[drop_ok])
    _nbit_theory(r, rows, starts)


def nbit_theory_bytes(row: dict[str, Any], start: dict[str, Any]) -> float:
    """Theoretical artifact bytes of an n-bit row: every floating parameter packed at b bits
    (``packed_bytes`` when the script records it) plus what the fp32 start artifact holds beside
    its weights (tokenizer, config, manifest, safetensors header) = start bytes - 4 x params."""
    bits = int(row["variant"].split()[0])
    packed = row.get("packed_bytes")
    if packed is None:
        packed = row["params"] * bits / 8
    overhead = start["artifact_mb"] * 1e6 - 4 * start["params"]
    return packed + overhead


def _nbit_theory(r: Report, rows: list[dict[str, Any]], starts: dict[str, dict[str, Any]]) -> None:
    chosen = [row for row in rows if row["table"] == "bits" and row["task"] in starts]
    r.add("### n-bit artifact size vs theory", "",
          "Theory = params x b / 8 bytes (bit-packed codes) + the non-weight bytes of the fp32 starting artifact "
          "(its size minus 4 bytes x params: tokenizer, config, manifest, header). Per-tensor min/max (8 bytes each) "
          "and the longer safetensors header are the expected excess.", "",
          "| task | bits | artifact MB | theory MB | artifact / theory | within 2 % |", "|---|---:|---:|---:|---:|---|")
    worst: dict[str, tuple[float, str]] = {}
    for row in chosen:
        theory = nbit_theory_bytes(row, starts[row["task"]])
        ratio = row["artifact_mb"] * 1e6 / theory
        ok = verdict(abs(ratio - 1), TARGETS["nbit_within"], at_most=True)
        r.add(f"| {row['task']} | {row['variant'].split()[0]} | {row['artifact_mb']:.3f} | {theory / 1e6:.3f} | "
              f"{ratio:.4f} | {ok} |")
        if row["task"] not in worst or abs(ratio - 1) > abs(worst[row["task"]][0] - 1):
            worst[row["task"]] = (ratio, row["variant"])
    for task, (ratio, variant) in worst.items():
        r.target(f"SQuAD-system {task}", f"every n-bit artifact within {TARGETS['nbit_within']:.0%} of theory",
                 f"worst {ratio:.4f}x ({variant})",
                 verdict(abs(ratio - 1), TARGETS["nbit_within"], at_most=True))
    r.add("")


def _eval(r: Report, d: dict[str, Any]) -> None:
    n = d["examples"]
    eng, naive = d["engine_median_s"], d["naive_median_s"]
    speed = naive / eng
    r.add(f"{d.get('benchmark', '')}. Model {d.get('model')}; {n} examples, batch {d.get('batch_size')}, max length "
          f"{d.get('max_length')}, {d.get('threads')} threads, {d.get('rounds')} alternating rounds (median); "
          f"predictions identical: {d.get('predictions_identical')}." +
          (f" Measured on a {d['caveat']}." if d.get("caveat") else ""), "",
          "| loop | median s | examples/s |", "|---|---:|---:|",
          f"| plain loop (pad to {d.get('max_length')}) | {naive:.2f} | {n / naive:.1f} |",
          f"| engine (sorted, dynamic padding) | {eng:.2f} | {n / eng:.1f} |", "",
          f"Speed-up **{speed:.2f}x** (target >= {TARGETS['engine_speedup']}x: {verdict(speed, TARGETS['engine_speedup'])}). "
          "No published figure: this is our own target (issue 3).", "")
    r.target("Engine", f"evaluation >= {TARGETS['engine_speedup']}x a plain loop", f"{speed:.2f}x",
             verdict(speed, TARGETS["engine_speedup"]))


def _cache(r: Report, d: dict[str, Any]) -> None:
    res = d["results"]
    cold = res["cold"]["seconds"]
    r.add(f"Recipe: finetune (train_size {d['recipe']['chain'][0]['config'].get('train_size')}) -> prune 0.3 -> "
          f"dynamic int8 on SST-2; interpreter start + imports (not included): {_f(d.get('startup_seconds'), '.1f')} s.",
          "", "| run | seconds | speed-up vs cold | variants from cache |", "|---|---:|---:|---:|")
    for name, row in res.items():
        r.add(f"| {name} | {row['seconds']:.1f} | {cold / row['seconds']:.1f}x | {sum(row['cached'])}/{len(row['cached'])} |")
    changed = res.get("warm: step 3 changed")
    speed = None if changed is None else cold / changed["seconds"]
    r.add("", f"Re-run with step 3 changed: {_f(speed, '.1f')}x (target >= {TARGETS['cache_speedup']:g}x: "
          f"{verdict(speed, TARGETS['cache_speedup'])}). No published figure (our own target, issue 6). The warm "
          "re-run still applies and measures step 3, a fixed cost, so the ratio grows with the cold run's training: "
          "a train_size below the shipped recipe's 2,000 understates it.", "")
    r.target("Prefix cache", f"re-run, first two steps unchanged, >= {TARGETS['cache_speedup']:g}x faster",
             f"{_f(speed, '.1f')}x", verdict(speed, TARGETS["cache_speedup"]))


def _queries(r: Report, d: dict[str, Any]) -> None:
    db = d["database"]
    r.add(f"Database: {db['variants']:,} variants, {db['metrics']:,} metric rows, {db['runs']} runs.", "",
          "| query | median ms | p90 ms | under 50 ms |", "|---|---:|---:|---|")
    for name, row in d["results"].items():
        ok = verdict(row["median_ms"], TARGETS["query_ms"], at_most=True)
        r.add(f"| {name} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | {ok} |")
        r.target("Store queries", f"{name} < {TARGETS['query_ms']:g} ms", f"{row['median_ms']:.1f} ms", ok)
    r.add("")


def _gui(r: Report, d: dict[str, Any]) -> None:
    la, ch, st = d["launch"], d["charts"], d["run_stall"]
    launch = la["median_s"]
    r.add("| measure | ours | target | verdict |", "|---|---|---|---|",
          f"| launch to interactive window (median of {la['repeats']}) | {launch:.2f} s (min {la['min_s']:.2f}, max "
          f"{la['max_s']:.2f}) | <= {TARGETS['launch_s']} s | {verdict(launch, TARGETS['launch_s'], at_most=True)} |")
    r.target("GUI", f"launch to interactive window <= {TARGETS['launch_s']} s", f"{launch:.2f} s",
             verdict(launch, TARGETS["launch_s"], at_most=True))
    if "skipped" in st:
        r.add(f"| GUI-thread max gap during a run | not run ({st['skipped']}) | <= {TARGETS['stall_ms']:g} ms | n/a |")
        r.target("GUI", f"GUI-thread stall during a run <= {TARGETS['stall_ms']:g} ms", "not run", "n/a")
    else:
        gap = st["max_gap_ms"]
        r.add(f"| GUI-thread max gap during a run ({st.get('ticks')} ticks of 10 ms, {st.get('outcome')}) | "
              f"{gap:.1f} ms (p99 {_f(st.get('p99_gap_ms'), '.1f')}) | <= {TARGETS['stall_ms']:g} ms | "
              f"{verdict(gap, TARGETS['stall_ms'], at_most=True)} |")
        r.target("GUI", f"GUI-thread stall during a run <= {TARGETS['stall_ms']:g} ms", f"{gap:.1f} ms",
                 verdict(gap, TARGETS["stall_ms"], at_most=True))
    redraw, pan = ch["full_redraw_median_ms"], ch["pan_zoom_median_ms"]
    r.add(f"| full chart redraw, {ch['variants']} variants (median) | {redraw:.1f} ms | < {TARGETS['redraw_ms']:g} ms | "
          f"{verdict(redraw, TARGETS['redraw_ms'], at_most=True)} |",
          f"| pan/zoom repaint, {ch['variants']} variants (median) | {pan:.1f} ms | < {TARGETS['pan_ms']:g} ms | "
          f"{verdict(pan, TARGETS['pan_ms'], at_most=True)} |",
          f"| table fill + sort + charts, {ch['variants']} variants | {_f(ch.get('table_fill_sort_charts_ms'), '.1f')} ms "
          "| — | — |", "",
          "Chart thresholds are bench_gui.py's reading of issue 7's \"fluid with 1,000 variants\". No published "
          "figure.", "")
    r.target("GUI", f"chart redraw, {ch['variants']} variants < {TARGETS['redraw_ms']:g} ms", f"{redraw:.1f} ms",
             verdict(redraw, TARGETS["redraw_ms"], at_most=True))
    r.target("GUI", f"pan/zoom, {ch['variants']} variants < {TARGETS['pan_ms']:g} ms", f"{pan:.1f} ms",
             verdict(pan, TARGETS["pan_ms"], at_most=True))


QUIET_CORES = 2  # the cores a quiet machine's training keeps busy at best (torch on 2 threads)


def _interval(value: float | None, low: float | None, high: float | None, fmt: str = ".3f") -> str:
    if value is None:
        return "—"
    return f"{value:{fmt}} [{_f(low, fmt)}, {_f(high, fmt)}]"


def _quiet(cpu_seconds: float | None) -> str:
    """What the CPU time says of a quiet machine's wall time: between both cores busy and one."""
    return "—" if cpu_seconds is None else f"{cpu_seconds / QUIET_CORES / 60:.1f}-{cpu_seconds / 60:.1f}"


def _apart_from_majority(t: dict[str, Any]) -> bool:
    majority = (t.get("versus_trivial") or {}).get("majority") or {}
    return t.get("ci_low") is not None and majority.get("high") is not None and t["ci_low"] > majority["high"]


def _early_stop(run: dict[str, Any]) -> str:
    """Where one fine-tune's early stopping left it: stopped or not, and which weights it kept."""
    if run.get("best_step") is None:
        return "—"
    if run.get("kept") is None:  # runs from before early stopping said which weights it kept
        return f"step {run['best_step']} (stopped)" if run.get("stopped_early") else f"best at step {run['best_step']}"
    end = f"stopped at {run.get('steps')}" if run.get("stopped_early") else "ran to the end"
    kept = f"kept step {run.get('kept_step')} (best)" if run["kept"] == "best" else "kept the final weights"
    return f"{end}, {kept}"


def _finetune_metric(t: dict[str, Any]) -> str:
    """The metric with its interval; over several seeds their mean ± sd, then each seed's."""
    runs = t.get("per_seed")
    if not runs:
        return _interval(t.get("metric"), t.get("ci_low"), t.get("ci_high"))
    each = "; ".join(f"seed {r['seed']}: {_interval(r.get('metric'), r.get('ci_low'), r.get('ci_high'))}" for r in runs)
    return f"mean {_f(t.get('metric'), '.3f')} ± {_f(t.get('metric_sd'), '.3f')} sd over {len(runs)} seeds ({each})"


def _finetune_seeds(d: dict[str, Any]) -> str:
    """The seeds each task ran with, from its entry (files written before entries carried their seed: the run's)."""
    fallback = d.get("settings", {}).get("seed")
    used = {t["task"]: t.get("seeds") or [t.get("seed", fallback)] for t in d["tasks"]}
    distinct = {tuple(v) for v in used.values()}
    if len(distinct) == 1:
        seeds = next(iter(distinct))
        return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    return "seeds " + "; ".join(f"{task} {', '.join(map(str, v))}" for task, v in used.items())


def _finetune_margin(t: dict[str, Any]) -> str:
    def one(r: dict[str, Any]) -> str:
        m = (r.get("versus_trivial") or {}).get("margin") or {}
        return _interval(m.get("value"), m.get("low"), m.get("high"), "+.3f")

    runs = t.get("per_seed")
    return one(t) if not runs else "; ".join(f"seed {r['seed']}: {one(r)}" for r in runs)


def finetune_verdicts(t: dict[str, Any]) -> dict[str, str]:
    """The metric and time verdicts of one task of bench_finetune, from its recorded values."""
    floor, minutes = FINETUNE_TARGETS[t["task"]]
    runs = t.get("per_seed") or []
    if floor is None:  # clearly above the majority class: the two intervals do not overlap
        apart = [_apart_from_majority(r) for r in runs or [t]]
        if not runs:
            metric = "met (intervals do not overlap)" if apart[0] else "**not met** (intervals overlap)"
        else:
            metric = (("met" if all(apart) else "**not met**") +
                      f" (intervals apart in {sum(apart)} of {len(runs)} seeds)")
    elif t.get("metric") is None:
        metric = "n/a"
    elif runs:  # several seeds: judged on their mean, with how many seeds reach the target alone
        reached = sum(1 for r in runs if r.get("metric") is not None and r["metric"] >= floor)
        metric = (("met" if t["metric"] >= floor else "**not met**") +
                  f" (mean of {len(runs)} seeds; {reached} of {len(runs)} reach it alone)")
    elif t["metric"] >= floor:
        metric = "met" + (" (whole interval above)" if (t.get("ci_low") or 0) >= floor else
                          " (point estimate; the interval reaches below)")
    else:
        metric = "**not met**" + (" (the interval reaches the target)" if (t.get("ci_high") or 0) >= floor else "")
    if runs:  # every fine-tune must fit: the worst seed's verdict
        worst = max((finetune_verdicts(run)["time"] for run in runs), key=_time_rank)
        return {"metric": metric, "time": f"{worst} (the worst of {len(runs)} seeds)"}
    wall, cpu = t.get("finetune_seconds"), t.get("finetune_cpu_seconds")
    loaded = f"the measured {_f(None if wall is None else wall / 60, '.1f')} min wall was inflated by a load of " \
             f"{_f((t.get('load') or {}).get('mean'), '.1f')} on 2 cores"
    if wall is None:
        time_ = "n/a"
    elif wall / 60 <= minutes:
        time_ = "met"
    elif cpu is not None and cpu / 60 <= minutes:  # a quiet machine keeps at least one core busy: wall <= CPU
        time_ = f"met on a quiet machine (its wall time is at most the CPU time, {cpu / 60:.1f} min; {loaded})"
    elif cpu is not None and cpu / QUIET_CORES / 60 <= minutes:
        time_ = (f"likely on a quiet machine, not shown: its wall time lies between {cpu / QUIET_CORES / 60:.1f} (both "
                 f"cores busy) and {cpu / 60:.1f} min (one core); {loaded}")
    else:
        time_ = "**not met**"
    return {"metric": metric, "time": time_}


def _time_rank(time_verdict: str) -> int:
    order = ("met", "met on a quiet machine", "likely on a quiet machine", "**not met**", "n/a")
    return max(i for i, start in enumerate(order) if time_verdict.startswith(start))


def _finetune(r: Report, d: dict[str, Any]) -> None:
    s = d.get("settings", {})
    cfg = s.get("finetune_config", {})
    shipped = s.get("shipped_defaults", True)
    r.add(("With the **shipped defaults**: a chain of one `finetune` step with no config" if shipped else
           f"With a **candidate** config (overrides {s.get('config_overrides')}), not the shipped defaults") +
          f" (finetune config version {s.get('finetune_config_version')}: lr {cfg.get('lr')}, at most "
          f"{cfg.get('max_steps')} steps capped by {cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}, warm-up "
          f"{cfg.get('warmup_ratio')}, batches grouped by length: {cfg.get('group_by_length')}, sequence length "
          f"{cfg.get('max_length') or 'from the data'}, early stopping: {cfg.get('early_stopping')}, pooling: "
          f"{cfg.get('pooling', 'first_token')}, decision threshold: {cfg.get('decision_threshold', 'argmax')})"
          + (f", measured as {s['measured_as']}" if s.get("measured_as") else "") + ". Model "
          f"{s.get('model')}, {_finetune_seeds(d)}, {s.get('threads')} threads; whole training splits and whole dev "
          "sets. 'pairs' is a custom data file: a seeded subset of the bundled QNLI file written as CSV "
          f"({(s.get('pairs') or {}).get('train_rows')} training rows; dev = our QNLI dev part), used through a "
          "recipe's `data:`. Intervals: 95 % bootstrap over the dev examples (the engine's); majority = the train "
          "split's majority class predicted everywhere (STS-B: a constant, which has no correlation).", "",
          "| task | metric | ours [95 % CI] | target | verdict | majority [95 % CI] | margin over it [95 % CI] | steps "
          "(epochs seen) | tokens | early stopping | fine-tune wall (min) | CPU (min) | quiet machine (min) | load "
          "mean / max | within (min) | time verdict |",
          "|---|---|---|---|---|---|---|---|---|---|---:|---:|---:|---|---:|---|")
    for t in d["tasks"]:
        floor, minutes = FINETUNE_TARGETS[t["task"]]
        v = finetune_verdicts(t)
        tv = t.get("versus_trivial") or {}
        maj, load = tv.get("majority") or {}, t.get("load") or {}
        runs = t.get("per_seed") or [t]  # several seeds: their training columns one after the other
        stopped = " / ".join(_early_stop(x) for x in runs)
        steps = " / ".join(f"{x.get('steps')} ({_f(x.get('epochs_seen'), '.2f')})" for x in runs)
        cpu = t.get("finetune_cpu_seconds")
        r.add(f"| {t['task']} | {t['metric_name']} | {_finetune_metric(t)} | "
              f"{'>= ' + format(floor, 'g') if floor is not None else 'above majority, no overlap'} | {v['metric']} | "
              f"{_interval(maj.get('value'), maj.get('low'), maj.get('high'))} | "
              f"{_finetune_margin(t)} | {steps} | {t.get('max_length')} | {stopped} | "
              f"{_f(None if t.get('finetune_seconds') is None else t['finetune_seconds'] / 60, '.1f')} | "
              f"{_f(None if cpu is None else cpu / 60, '.1f')} | {_quiet(cpu)} | "
              f"{_f(load.get('mean'), '.1f')} / {_f(load.get('max'), '.1f')} | {minutes:g} | {v['time']} |")
        r.target("Fine-tuning (issue 14)", f"{t['task']}: {t['metric_name']} "
                 f"{'>= ' + format(floor, 'g') if floor is not None else 'clearly above the majority class'}",
                 _finetune_metric(t), v["metric"])
        r.target("Fine-tuning (issue 14)", f"{t['task']}: within {minutes:g} minutes (2 cores)",
                 f"{_f(None if t.get('finetune_seconds') is None else t['finetune_seconds'] / 60, '.1f')} min wall, "
                 f"{_quiet(t.get('finetune_cpu_seconds'))} min quiet", v["time"])
    r.add("", "The step's own summary on its held-out slice (10 % of the training split, at most 500 rows), and, "
          "where the run recorded it, whether training had converged (the final weights against the half-way "
          "scoring, paired on those rows):", "")
    for t in d["tasks"]:
        for run in t.get("per_seed") or [t]:
            seed = f" (seed {run['seed']})" if t.get("per_seed") else ""
            trend = (run.get("convergence") or {}).get("summary")
            first = run.get("first_on_task") or {}
            before = "; ".join(x for x in ((first.get("learned") or {}).get("summary"),
                                           (first.get("convergence") or {}).get("summary")) if x)
            r.add(f"- {t['task']}{seed}: {(run.get('learned') or {}).get('summary', '—')}" + (f"; {trend}" if trend else "")
                  + (f" (first on {first.get('task')}, {first.get('steps')} steps: {before})" if before else ""))
    tuned = [(t, run) for t in d["tasks"] for run in t.get("per_seed") or [t] if run.get("decision_threshold")]
    if tuned:
        r.add("", "The decision threshold (`decision_threshold: auto` tunes it where the metric is MCC or F1): the logit "
              "margin above which class 1 is predicted, chosen on the held-out slice, against the argmax (margin 0) "
              "of the same weights on the same dev rows. The held-out gain is optimistic (those rows chose the "
              "threshold); the dev change is paired, with its 95 % interval.", "",
              "| task (seed) | margin | held-out before -> after | dev, argmax -> tuned | dev change [95 % CI] | "
              "predicted class 1, argmax -> tuned (true) |", "|---|---:|---|---|---|---|")
        for t, run in tuned:
            th = run["decision_threshold"]
            change = th["dev_change"]
            r.add(f"| {t['task']} ({run['seed']}) | {th['margin']:+.2f} | {th['held_out_before']:.3f} -> "
                  f"{th['held_out_after']:.3f} ({th['held_out_examples']} rows) | {th['dev_argmax']:.3f} -> "
                  f"{run['metric']:.3f} | {change['value']:+.3f} [{change['low']:+.3f}, {change['high']:+.3f}] "
                  f"({'within noise' if change['low'] <= 0 <= change['high'] else 'beyond noise'}) | "
                  f"{th['dev_argmax_predicted_1']:.1%} -> {th['dev_predicted_1']:.1%} ({th['dev_true_1']:.1%}) |")
        if len(tuned) > 1:
            gains = [run["decision_threshold"]["dev_change"]["value"] for _, run in tuned]
            r.add("", f"Mean dev change over these {len(tuned)} runs: {sum(gains) / len(gains):+.3f}.")
    r.add("", "Wall time = the finetune step (tokenizing, training, held-out scoring). The machine is shared, so its "
          "wall time grows with the load; the CPU time (every thread of the process, OpenMP threads sleeping rather "
          "than spinning while they wait) grows much less. On a quiet machine the step's wall time lies between the "
          "CPU time over 2 cores (both kept busy) and the CPU time (one core): the 'quiet machine' column. Not "
          "measured on an idle machine.", "")


MB = 1e6
BACKENDS_AREA = "Deployment backends (issue 15)"
_ROLE_BY_NAME = {"torch fp32": "fp32", "torch dynamic int8": "engine int8", "OpenVINO NNCF static int8": "engine int8",
                 "hand-written NNCF + OpenVINO int8": "hand-written"}  # files written before contenders had a role


def _role(c: dict[str, Any]) -> str:
    return c.get("role") or _ROLE_BY_NAME.get(c["name"], "other")


def _ratio(d: dict[str, float], fmt: str = ".2f", suffix: str = "x") -> str:
    value = d["ratio"] if "ratio" in d else d["value"]
    return f"{value:{fmt}}{suffix} [{d['low']:{fmt}}, {d['high']:{fmt}}]"


def interval_verdict(value: float, low: float, high: float, target: float, *, at_most: bool = False) -> str:
    """met / not met from the point estimate, saying when the 95 % interval reaches across the target."""
    ok = value <= target if at_most else value >= target
    across = (high > target) if at_most else (low < target)
    reaches = (low <= target) if at_most else (high >= target)
    if ok:
        return "met" + (f" (point estimate; the interval reaches {'above' if at_most else 'below'})" if across else "")
    return "**not met**" + (" (the interval reaches the target)" if reaches else "")


def _row_metric(row: dict[str, Any], missing: str) -> str:
    """An engine row's accuracy in % with its 95 % interval."""
    if row["metric"] is None:
        return missing
    return f"{100 * row['metric']:.1f} [{100 * row['metric_ci_low']:.1f}, {100 * row['metric_ci_high']:.1f}]"


def _row_change(row: dict[str, Any]) -> str:
    """An engine row's change against its parent in points with its paired 95 % interval."""
    if row["delta_vs_parent"] is None:
        return "—"
    return f"{100 * row['delta_vs_parent']:+.1f} [{100 * row['delta_ci_low']:+.1f}, {100 * row['delta_ci_high']:+.1f}]"


def _flag_codes(row: dict[str, Any]) -> str:
    """Each flag code once (a variant not runnable on two backends carries not_on_backend twice, one per text)."""
    return "; ".join(dict.fromkeys(f["code"] for f in row["flags"]))


def _fastest_vs_hand_written(timed: dict[str, Any], candidates: list[dict[str, Any]]) -> tuple[dict[str, Any],
                                                                                            dict[str, float]]:
    """The fastest of ``candidates`` at one batch size, and its paired speed-up over the hand-written file."""
    best = min(candidates, key=lambda c: timed[c["name"]]["p50_ms"])
    return best, timed[best["name"]]["speedup_vs_hand_written"]


def backend_verdicts(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Issue 15's targets as (area, target, ours, verdict), computed from the recorded values."""
    t = BACKEND_TARGETS
    by_role: dict[str, list[dict[str, Any]]] = {}
    for c in d["contenders"]:
        by_role.setdefault(_role(c), []).append(c)
    fp32 = by_role["fp32"][0]
    hand = (by_role.get("hand-written") or [None])[0]
    out: list[tuple[str, str, str, str]] = []
    # Every int8 file the workbench made of the fine-tuned model counts, the chain's included when it kept
    # its 1-point budget (a chain over budget is role "chain over budget" and does not).
    engine_int8 = by_role.get("engine int8", []) + by_role.get("chain", [])
    for b in ("b8", "b1"):
        label = f"fastest int8 variant no slower than a hand-written NNCF + OpenVINO int8, batch {b[1:]} x 128"
        timed = d["timings"][b]
        if hand is None or not engine_int8:
            out.append((BACKENDS_AREA, label, "no hand-written reference timed" if hand is None else "no int8 variant",
                        "n/a"))
            continue
        best, r = _fastest_vs_hand_written(timed, engine_int8)
        out.append((BACKENDS_AREA, label, f"{_ratio(r)} ({best['name']})",
                    interval_verdict(r["ratio"], r["low"], r["high"], t["int8_vs_hand_written"])))
    same_depth = by_role.get("engine int8", [])
    if hand is not None and same_depth and by_role.get("chain"):  # shown beside: the reading without the chain
        for b in ("b8", "b1"):
            best, r = _fastest_vs_hand_written(d["timings"][b], same_depth)
            out.append((BACKENDS_AREA, f"for reference, same depth only (no distillation): fastest int8 vs the "
                        f"hand-written one, batch {b[1:]} x 128", f"{_ratio(r)} ({best['name']})",
                        interval_verdict(r["ratio"], r["low"], r["high"], t["int8_vs_hand_written"])))
    if engine_int8:
        best = min(engine_int8, key=lambda c: d["timings"]["b8"][c["name"]]["p50_ms"])
        a = best["accuracy_vs_fp32_points"]
        out.append((BACKENDS_AREA, f"that int8 variant within {t['int8_metric_drop']:g} point of the fp32 accuracy",
                    f"{_ratio(a, '+.1f', '')} points ({best['name']})",
                    interval_verdict(-a["value"], -a["high"], -a["low"], t["int8_metric_drop"], at_most=True)))
    chain = d.get("chain")
    ours = (by_role.get("chain") or [None])[0]
    name = f"best chain under a {t['chain_metric_drop']:g}-point budget"
    if chain is None:
        out.append((BACKENDS_AREA, f"{name} (target 2)", "not run (--no-chain)", "n/a"))
        return out
    late = ""
    if ours is None:
        why = "; ".join(f"{o['label']}: {o['text']}" for o in chain.get("over_budget") or []) or "stopped early"
        out.append((BACKENDS_AREA, f"{name} (target 2)", f"no file: the chain did not reach its end ({why})",
                    "**not met**"))
        ours = (by_role.get("chain over budget") or [None])[0]
        if ours is None:
            return out
        name, late = "the same chain run without its budget", " (its file breaks the budget)"
    for b in ("b8", "b1"):
        label = f"{name} >= {t['chain_vs_hand_written']:g}x faster than the hand-written OpenVINO int8, batch {b[1:]}"
        if hand is None:
            out.append((BACKENDS_AREA, label, "no hand-written reference timed", "n/a"))
            continue
        r = d["timings"][b][ours["name"]]["speedup_vs_hand_written"]
        out.append((BACKENDS_AREA, label, _ratio(r),
                    interval_verdict(r["ratio"], r["low"], r["high"], t["chain_vs_hand_written"]) + late))
    ratio = ours["bytes"] / fp32["bytes"]
    out.append((BACKENDS_AREA, f"{name} <= {t['chain_bytes_ratio']:g}x the fp32 model's bytes",
                f"{ours['bytes'] / MB:.2f} / {fp32['bytes'] / MB:.2f} MB = {ratio:.3f}x",
                verdict(ratio, t["chain_bytes_ratio"], at_most=True) + late))
    a = ours["accuracy_vs_fp32_points"]
    engine = "over budget" if chain.get("over_budget") else "within budget"
    out.append((BACKENDS_AREA, f"{name}: within {t['chain_metric_drop']:g} point of the fp32 accuracy",
                f"{_ratio(a, '+.1f', '')} points (the engine's budget check: {engine})",
                interval_verdict(-a["value"], -a["high"], -a["low"], t["chain_metric_drop"], at_most=True)))
    return out


def _backends(r: Report, d: dict[str, Any]) -> None:
    s = d["settings"]
    contenders = d["contenders"]
    examples = contenders[0]["accuracy"]["examples"]
    if d.get("quick"):
        r.add("**--quick: a smoke run that checks the script; its figures are not for quoting.**", "")
    r.add(f"Command: `{d['command'].strip()}`", "",
          f"Fine-tuning: the finetune step's defaults with a budget of {s['finetune_max_steps']} steps, through the "
          f"runner; every model below loaded from its saved file. Accuracy on {examples} SST-2 dev sentences"
          f"{' (a seeded subset)' if s.get('eval_limit') else ''} by running that file, 95 % bootstrap interval; "
          f"latency: p50 (p25-p75) over {s['rounds']} interleaved rounds ({s['warmup']} warm-up), {s['threads']} "
          f"threads, sequence {s['seq_len']}, inputs of the same shape for all (seeded ids, the same batch for files "
          "sharing a tokenizer); speed-up = per-round paired median ratio with a 95 % bootstrap interval. MB = the "
          "folder a user ships (model file(s), tokenizer, config).", "",
          "| model | backend | made by | MB | accuracy % [95 % CI] | vs torch fp32 (points) | b8 p50 ms | b8 vs torch "
          "fp32 | b8 vs hand-written | b1 p50 ms | b1 vs torch fp32 | b1 vs hand-written |",
          "|---|---|---|---:|---|---|---:|---|---|---:|---|---|")
    for c in contenders:
        cells = []
        for b in ("b8", "b1"):
            t = d["timings"][b][c["name"]]
            hand = t.get("speedup_vs_hand_written")
            cells.append(f"{t['p50_ms']:.1f} ({t['p25_ms']:.1f}-{t['p75_ms']:.1f}) | {_ratio(t['speedup_vs_torch_fp32'])} "
                         f"| {_ratio(hand) if hand else '—'}")
        acc = {k: 100 * c["accuracy"][k] for k in ("value", "low", "high")}
        r.add(f"| {c['name']} | {c['backend']} | {c['made_by']} | {c['bytes'] / MB:.2f} | {_ratio(acc, '.1f', '')} | "
              f"{_ratio(c['accuracy_vs_fp32_points'], '+.1f', '')} | {' | '.join(cells)} |")
    chain = d.get("chain")
    if chain is not None:
        steps = " -> ".join(f"{st['step']} {json.dumps(st.get('config') or {}, sort_keys=True)}"
                            for st in chain["recipe"]["chain"])
        r.add("", "### Target 2's chain, run as a user's recipe", "",
              f"Recipe `{chain['recipe']['name']}` with `budget: {json.dumps(chain['budget'])}` (the reference is the "
              f"run's first trained variant, the fine-tuned model): {steps}.", "",
              "| variant | accuracy % [95 % CI] | change vs parent (points) | MB | flags |", "|---|---|---|---:|---|")
        for row in chain["rows"]:
            acc, change = _row_metric(row, "—"), _row_change(row)
            r.add(f"| {row['label']}{' (cached)' if row['cached'] else ''} | {acc} | {change} | {row['size_mb']:.2f} | "
                  f"{_flag_codes(row)} |")
        for row in (chain.get("without_budget") or {}).get("rows", [])[3:]:
            acc, change = _row_metric(row, "—"), _row_change(row)
            r.add(f"| {row['label']} (the recipe run again without its budget) | {acc} | {change} | {row['size_mb']:.2f} | "
                  f"{_flag_codes(row)} |")
        r.add("", "The budget: " + ("; ".join(f"**{o['label']} over budget**: {o['text']}" for o in chain["over_budget"])
                                    if chain["over_budget"] else "every variant of the chain within it") + ".")
    r.add("", "### Targets", "", "Target 1 takes the fastest of every int8 file the workbench made of the fine-tuned "
          "model: the same-depth ones above, and the chain's when it kept its 1-point budget.", "",
          "| target | ours | verdict |", "|---|---|---|")
    for area, target, ours, verdict_ in backend_verdicts(d):
        r.add(f"| {target} | {ours} | {verdict_} |")
        r.target(area, target, ours, verdict_)
    r.add("", "### The engine's own rows (measure.backends: each variant timed on every backend in its own "
          "interleaved rounds)", "", "| variant | accuracy % | MB | torch p50 ms | onnxruntime p50 ms | openvino p50 ms "
          "| fastest | flags |", "|---|---|---:|---|---|---|---|---|")
    for row in d["engine_rows"]:
        cells = []
        for b in ("torch", "onnxruntime", "openvino"):
            v = (row.get("backend_latency") or {}).get(b)
            cells.append(f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]" if v else "not timed")
        r.add(f"| {row['label']} | {_row_metric(row, '')} | {row['size_mb']:.2f} | {' | '.join(cells)} | "
              f"{row['fastest_backend'] or ''} | {_flag_codes(row)} |")
    env = d.get("environment") or d.get("machine") or {}
    cpu = d.get("cpu_seconds")
    r.add("", f"Machine: {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores; versions: "
          + ", ".join(f"{k} {v}" for k, v in (d.get("versions") or {}).items()) + ".", "",
          "Load average (1 min) while it ran, other jobs sharing the 2 cores: "
          + ", ".join(f"{k} {v}" for k, v in d["load_average_1m"].items()) + ".", "",
          f"Total {d['seconds'] / 60:.1f} min wall{'' if cpu is None else f', {cpu / 60:.1f} min CPU (this process)'}"
          f" (building outside the engine: " + ", ".join(f"{k} {v} s" for k, v in d["build_seconds"].items()) + ").",
          "")


SECTIONS: dict[str, Callable[[Report, dict[str, Any]], None]] = {
    "finetune": _finetune,
    "tinybert": _tinybert, "squad": _squad, "squad-share": _squad_share, "squad-sketch": _squad_sketch,
    "squad-sketch-ls": _squad_sketch_ls,
    "sketch-init": _sketch_init, "sketch-error": _sketch_error, "eval": _eval, "cache": _cache, "queries": _queries, "gui": _gui,
    "backends": _backends,
}


def write_report(results: Path, manifest: dict[str, Any], out: Path = REPORT) -> str:
    text = render(results, manifest)
    out.write_text(text, encoding="utf-8")
    return text


