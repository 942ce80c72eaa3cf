"""``workbench-cli``: run recipes headless and read the results database.

    workbench-cli run RECIPE [--db FILE] [--artifacts DIR] [--yes]  run in a worker process, with progress
          [--ray auto|HOST:PORT [--shared-artifacts DIR]]      the sweep's branches on a Ray cluster
    workbench-cli resume RUN [--ray ...]                       continue a failed/cancelled/interrupted run
    workbench-cli validate RECIPE [--artifacts DIR] [--yes]    list every problem, run nothing
    workbench-cli runs | show RUN | compare VARIANT...         read results (runs: with disk use)
    workbench-cli label RUN [--name N] [--tags a,b] [--note T]  name, tag and annotate a run
    workbench-cli delete RUN [--force]                         delete a run and its artifacts
    workbench-cli gc [--dry-run]                               remove artifacts no run refers to
    workbench-cli export --format csv|markdown|latex|json [--run N] [-o FILE]
    workbench-cli steps | tasks                                list the registries
    workbench-cli evaluate MODEL --task T                      evaluate one model (needs core.measure)
    workbench-cli sensitivity VARIANT --transform int8 --transform nbit:6 [--examples 400] [--by layer|role]
    workbench-cli sensitivity --show MAP [--format csv|markdown|json] [-o FILE] | --list [VARIANT]
    workbench-cli mixed-precision --sensitivity MAP (--target-mb X | --max-drop POINTS | --size-of-uniform BITS |
                  --drop-of-uniform BITS) [--estimate interval|point] [--min-bits B] [--max-bits B] [--recipe IN] -o OUT
    workbench-cli disagreements A B [--format csv|markdown|json] [-o FILE]

User errors print one line to stderr and exit 2 (a failed run exits 1, a cancelled one 130); never a
traceback. A run of more than 200 variants, or whose artifacts would nearly fill the drive, is
refused by ``run`` and ``validate`` unless ``--yes`` is given (core.recipe.run_estimate). The tables are the ones the GUI exports (core.store.results_table + export_table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError
from core.protocol import RunRequest

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


def _err(message: str) -> None:
    print(f"workbench-cli: error: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------
# Progress


class Progress:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, stream: Any = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.total = 0
        self.done = 0
        self.label = ""
        self.labels: dict[int, str] = {}  # node -> label: on a Ray cluster several variants are in flight
        self._line_len = 0

    def _draw(self, fraction: float, message: str) -> None:
        if not self.tty:
            return
        filled = round(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{self.done + 1}/{self.total}] {self.label[:40]:<40} [{bar}] {fraction * 100:3.0f}% {message[:30]}"
        pad = max(0, self._line_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._line_len = len(text)

    def _line(self, text: str) -> None:
        if self.tty and self._line_len:
            self.stream.write("\r" + " " * self._line_len + "\r")
            self._line_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Any) -> None:
        from core import protocol as p

        if isinstance(event, p.RunStarted):
            self.total = event.variants
            resumed = " (resumed)" if event.resumed else ""
            self._line(f"run {event.run_id}{resumed}: {self.total} variant(s) to produce")
        elif isinstance(event, p.StepStarted):
            self.label = self.labels[event.node] = event.label or event.step
            if not self.tty:
                self._line(f"[{self.done + 1}/{self.total}] {self.label} ...")
            self._draw(0.0, "")
        elif isinstance(event, p.Progress):
            self.label = self.labels.get(event.node, self.label)
            self._draw(event.fraction, event.message)
        elif isinstance(event, p.StepFinished):
            self.label = self.labels.get(event.node, self.label)
            how = "cached" if event.cached else f"{event.seconds:.1f} s"
            self._line(f"[{self.done + 1}/{self.total}] {self.label}: done ({how}, variant {event.variant_id})")
            self.done += 1
        elif isinstance(event, p.StepSkipped):
            self._line(f"[{self.done + 1}/{self.total}] {event.label}: not run ({event.reason})")
            self.done += 1
        elif isinstance(event, p.Log) and event.level in ("warning", "error"):
            self._line(f"{event.level}: {event.message}")
        elif isinstance(event, p.RunFinished):
            self._line(f"run {event.run_id} finished")
        elif isinstance(event, p.RunCancelled):
            self._line(f"run {event.run_id} cancelled")


# ------------------------------------------------------------------------------------------
# Commands


def _db(args: argparse.Namespace) -> Path:
    from core.paths import default_db

    return default_db(args.db)


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    from core.store import mark_interrupted_runs, open_store

    store = open_store(_db(args), create=create)
    mark_interrupted_runs(store)
    return store


def _run_worker(request: Any, args: argparse.Namespace) -> int:
    from core.run import process

    cancel = threading.Event()
    current: dict[str, Any] = {}

    def on_sigint(_signum: int, _frame: Any) -> None:
        if not cancel.is_set():
            print("\ncancelling (Ctrl+C again to stop at once)...", file=sys.stderr)
            cancel.set()
        elif "worker" in current:
            current["worker"].kill()

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    verbose = getattr(args, "verbose", False)
    try:
        outcome = process.run_worker(
            request, on_event=Progress(), cancel=cancel,
            on_stderr=(lambda line: print(line, file=sys.stderr)) if verbose else None,
            on_start=lambda w: current.__setitem__("worker", w),
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if outcome.ok:
        print(f"run {outcome.run_id}: finished; 'workbench-cli show {outcome.run_id}' for results")
        return EXIT_OK
    message = outcome.message()
    if outcome.resumable:
        message += f" 'workbench-cli resume {outcome.run_id}' continues it."
    _err(message)
    return EXIT_CANCELLED if outcome.status == "cancelled" else EXIT_RUN_FAILED


def _execution(args: argparse.Namespace) -> dict[str, Any]:
    """The request's Ray fields (--ray, --shared-artifacts), checked before a worker starts."""
    from core.run import cluster

    shared = getattr(args, "shared_artifacts", None)
    if args.ray is None:
        if shared:
            raise WorkbenchError("--shared-artifacts needs --ray: it names the folder every Ray node shares")
        return {}
    address = cluster.check_address(args.ray)
    if not cluster.ray_available():
        raise WorkbenchError(f"--ray needs Ray on this machine: {cluster.INSTALL_HINT} (docs/CLUSTER.md)")
    return {"ray": address, "shared_artifacts": bool(shared)}


def _artifacts(args: argparse.Namespace) -> Path:
    from core.paths import default_artifacts

    return Path(args.artifacts).expanduser() if args.artifacts else default_artifacts(_db(args))


def _confirm_size(recipe: Any, artifacts: Path, args: argparse.Namespace) -> Any:
    """The run's estimate; a WorkbenchError naming the counts and sizes when it is large and not confirmed."""
    from core.recipe import run_estimate

    estimate = run_estimate(recipe, artifacts)
    if estimate.needs_confirmation and not args.yes:
        raise WorkbenchError(
            f"{args.recipe}: a large run: {'; '.join(estimate.reasons())} ({estimate.summary()}). "
            "Sweep fewer values or choose another --artifacts folder, or add --yes to go ahead"
        )
    return estimate


def cmd_run(args: argparse.Namespace) -> int:
    from core.recipe import check_recipe, load_recipe
    from core.store import open_store

    recipe = load_recipe(args.recipe)
    check_recipe(recipe)
    execution = _execution(args)
    if execution.get("shared_artifacts") and args.artifacts:
        raise WorkbenchError("give --artifacts or --shared-artifacts, not both: the shared folder holds the artifacts")
    artifacts = Path(args.shared_artifacts).expanduser() if execution.get("shared_artifacts") else _artifacts(args)
    _confirm_size(recipe, artifacts, args)
    db = _db(args)
    open_store(db).close()  # a corrupt or newer database fails here, before a worker starts
    return _run_worker(RunRequest(recipe=recipe.to_dict(), db=str(db), artifacts=str(artifacts), **execution), args)


def cmd_resume(args: argparse.Namespace) -> int:
    from core.store import get_run

    execution = _execution(args)
    with _open(args) as store:
        run = get_run(store, args.run)
    if run.status not in ("failed", "cancelled", "interrupted"):
        raise WorkbenchError(f"run {run.id} is {run.status}; only failed, cancelled or interrupted runs resume. "
                             "To repeat it, start its recipe again with 'workbench-cli run' (finished variants are "
                             "reused from the cache)")
    return _run_worker(RunRequest(db=str(_db(args)), resume_run=run.id, **execution), args)


def cmd_validate(args: argparse.Namespace) -> int:
    from core.recipe import load_recipe, validate_recipe

    recipe = load_recipe(args.recipe)
    problems = validate_recipe(recipe)
    for p in problems:
        print(f"{args.recipe}: {p}", file=sys.stderr)
    if problems:
        return EXIT_USER_ERROR
    estimate = _confirm_size(recipe, _artifacts(args), args)
    print(f"{args.recipe}: valid; {estimate.summary()}")
    return EXIT_OK


def _print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f}"


def cmd_runs(args: argparse.Namespace) -> int:
    from core.store import list_runs, run_disk_usage

    with _open(args) as store:
        runs = list_runs(store, model=args.model, status=args.status)
        disk = run_disk_usage(store, [r.id for r in runs])
    if not runs:
        print("no runs yet")
        return EXIT_OK
    _print_table(
        ["run", "status", "task", "model", "name", "tags", "variants", "disk_mb", "started", "seconds"],
        [[r.id, r.status, r.task, r.model, r.name or r.recipe_name, ",".join(r.tags), r.variants,
          _mb(disk.get(r.id, 0)), r.started_at, f"{r.seconds:.1f}" if r.seconds is not None else ""] for r in runs],
    )
    print(f"{_mb(sum(disk.values()))} MB of artifacts in {len(runs)} run(s)")
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    from core.store import get_run, set_run_labels

    if args.name is None and args.tags is None and args.note is None:
        raise WorkbenchError("give --name, --tags or --note (an empty value clears it)")
    with _open(args) as store:
        set_run_labels(store, args.run, name=args.name, tags=args.tags, note=args.note)
        run = get_run(store, args.run)
    print(f"run {run.id}: name '{run.name}', tags [{', '.join(run.tags)}], note '{run.note}'")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from core.store import delete_run

    with _open(args) as store:
        report = delete_run(store, args.run, force=args.force)
    print(f"run {report.run_id}: deleted with {report.variants} variant(s); {_mb(report.bytes_freed)} MB freed"
          + (f" ({report.folder})" if report.folder else ""))
    if report.dependents:
        print(f"runs {', '.join(map(str, report.dependents))} keep their numbers; their reused artifacts are gone")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from core.paths import default_artifacts
    from core.store import collect_garbage

    with _open(args) as store:
        report = collect_garbage(store, [default_artifacts(_db(args))], dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in report.removed:
        print(f"{verb} {path}")
    if report.skipped_running:
        print(f"left alone: the folders of running run(s) {', '.join(map(str, report.skipped_running))}")
    print(f"{verb} {len(report.removed)} item(s), {_mb(report.bytes_freed)} MB")
    return EXIT_OK


def _num(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _interval(value: Any, low: Any, high: Any, fmt: str, sign: str = "") -> str:
    if value is None:
        return ""
    text = format(value, sign + fmt)
    return text + (f" [{format(low, sign + fmt)}, {format(high, sign + fmt)}]" if low is not None else "")


def print_rows(rows: list[Any]) -> None:
    """The rows a person reads: metric and change with their 95 % intervals, size, latency, flags,
    then the settings they were measured under and each flag's reason. Exports have every column."""
    from core.store.rows import flag_title

    if not rows:
        print("no variants")
        return
    scale = 1.0 if any(r.task == "squad_v2" for r in rows) else 100.0
    backends = list(dict.fromkeys(b for r in rows for b in r.backend_latency))  # measure.backends, as timed
    table = []
    for r in rows:
        metric = _interval(*(None if v is None else v * scale for v in (r.metric, r.metric_ci_low, r.metric_ci_high)), ".1f")
        if r.seeds > 1 and r.metric is not None:
            metric = f"{r.metric * scale:.1f} ± {(r.metric_sd or 0) * scale:.1f} (n={r.seeds})"
        delta = _interval(*(None if v is None else v * scale for v in (r.delta_vs_parent, r.delta_ci_low, r.delta_ci_high)),
                          ".1f", "+")
        on_backends = [_interval(*r.backend_latency.get(b, [None, None, None]), ".1f") for b in backends]
        table.append([r.variant, r.label, metric, delta, _num(r.pct_baseline, ".1f"), _num(r.size_mb, ".2f"),
                      _num(r.pct_smaller, ".1f"), _interval(r.latency_p50_ms, r.latency_p50_ci_low, r.latency_p50_ci_high, ".1f"),
                      *on_backends, *([r.fastest_backend or ""] if backends else []),
                      _interval(r.speedup, r.speedup_ci_low, r.speedup_ci_high, ".2f"),
                      ", ".join(flag_title(f["code"]) for f in r.flags)])
    name = rows[0].metric_name or "metric"
    unit = "" if scale == 1.0 else " (x100)"
    _print_table(["variant", "label", f"{name}{unit} [95% CI]", "vs parent [95% CI]", "% of ref", "MB", "% smaller",
                  "p50 ms [95% CI]", *(f"{b} p50 ms [95% CI]" for b in backends), *(["fastest"] if backends else []),
                  "speed-up [95% bounds]", "flags"], table)
    first = rows[0]
    print()
    print(f"measured on {first.eval_examples} dev examples; latency batch {first.latency_batch} x seq "
          f"{first.latency_seq_len}, {first.latency_threads} thread(s), {first.latency_repeats} repeats; "
          "intervals: 95 % seeded bootstrap over examples (paired for 'vs parent'), over repeats for p50; "
          "speed-up bounds from both p50 intervals (a speed-up whose bounds include 1 is within the timing noise)"
          + ("; backends timed side by side in interleaved rounds, same threads and inputs" if backends else ""))
    for r in rows:
        for f in r.flags:
            print(f"variant {r.variant}: {flag_title(f['code'])}: {f['text']}")


def cmd_show(args: argparse.Namespace) -> int:
    from core.store import get_run, result_rows, run_environment

    with _open(args) as store:
        run = get_run(store, args.run)
        rows = result_rows(store, run_ids=[run.id])
        env = run_environment(store, run.id)
    print(f"run {run.id}: {run.status}  task {run.task}  model {run.model}  seed {run.seed}")
    if run.recipe_name:
        print(f"recipe: {run.recipe_name}")
    if run.name or run.tags or run.note:
        print(f"name: {run.name or '-'}  tags: {', '.join(run.tags) or '-'}")
        if run.note:
            print(f"note: {run.note}")
    print(f"started {run.started_at}  finished {run.finished_at or '-'}  attempts {run.attempts}")
    if run.error:
        print(f"error: {run.error}")
    if env:
        keys = [k for k in ("cpu_model", "cores", "threads", "python") if k in env]
        load = f", load {rows[-1].load_avg_1m:.1f}" if rows and rows[-1].load_avg_1m is not None else ""
        print("environment: " + ", ".join(f"{k}={env[k]}" for k in keys) + load)
    print()
    print_rows(rows)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from core.store import export_table, results_table

    with _open(args) as store:
        table = results_table(store, variant_ids=args.variants)
    print(export_table(table, args.format), end="")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from core.store import export_table, results_table

    with _open(args) as store:
        table = results_table(store, run_ids=args.run or None, variant_ids=args.variant or None)
    text = export_table(table, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise WorkbenchError(f"Cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {len(table.rows)} row(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_steps(args: argparse.Namespace) -> int:
    from core.steps.base import all_steps

    steps = all_steps()
    if args.json:
        print(json.dumps([{"id": s.id, "title": s.title, "category": s.category, "config": s.config_cls.describe()}
                          for s in steps], indent=2))
        return EXIT_OK
    _print_table(["id", "category", "title", "requires", "adds", "removes"],
                 [[s.id, s.category, s.title, ",".join(sorted(s.requires)), ",".join(sorted(s.adds)),
                   ",".join(sorted(s.removes))] for s in steps])
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from core.tasks.base import all_tasks

    tasks = all_tasks()
    _print_table(["id", "title", "head", "metric", "splits"],
                 [[t.id, t.title, t.head, t.primary_metric, ",".join(t.splits)] for t in tasks])
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """A model reference, or a saved variant's folder (read with its manifest, as the runner saved it)."""
    from core import measure
    from core.models import ModelRef, load_model, load_tokenizer
    from core.steps import load_state
    from core.tasks.base import get_task

    ref = ModelRef.parse(args.model)
    task = get_task(args.task)
    folder = ref.local_folder()
    if folder is not None and (folder / "manifest.json").is_file():
        state = load_state(folder)
        if state.head != task.head:
            raise WorkbenchError(f"{folder} has a {state.head} head; task {task.id} needs a {task.head} head")
        model, tokenizer = state.model, state.tokenizer
    else:
        model = load_model(ref, head=task.head, num_labels=task.num_labels)  # type: ignore[arg-type]
        tokenizer = load_tokenizer(ref)
    model.eval()
    result = measure.evaluate(model, tokenizer, task, "dev", limit=args.limit, batch_size=args.batch_size)
    print(json.dumps({"model": str(ref), "task": task.id, "examples": result.examples,
                      "seconds": round(result.seconds, 3), **result.metrics}, indent=2))
    return EXIT_OK


def _write_or_print(text: str, output: str | None, what: str) -> None:
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"Cannot write {output}: {exc.strerror or exc}") from None
    print(f"wrote {what} to {output}", file=sys.stderr)


def _cancel_on_sigint() -> tuple[threading.Event, Any]:
    """Ctrl+C asks the in-process analysis to stop at its next safe point; a second one stops at once."""
    cancel = threading.Event()

    def on_sigint(_signum: int, _frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        print("\ncancelling (Ctrl+C again to stop at once)...", file=sys.stderr)
        cancel.set()

    main_thread = threading.current_thread() is threading.main_thread()
    return cancel, signal.signal(signal.SIGINT, on_sigint) if main_thread else None


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from core.store import export_sensitivity, sensitivity_map, sensitivity_maps
    from core.store.analysis import describe, sensitivity_grid

    if args.list:
        with _open(args) as store:
            maps = sensitivity_maps(store, variant_id=args.variant)
        if not maps:
            print("no sensitivity maps yet")
            return EXIT_OK
        _print_table(["map", "variant", "by", "transforms", "examples", "seed", "status", "seconds", "created"],
                     [[m.id, m.variant_id, m.grouping, " ".join(m.transforms), m.examples, m.seed, m.status,
                       _num(m.seconds, ".0f"), m.created_at] for m in maps])
        return EXIT_OK
    if args.show is None:
        if args.variant is None:
            raise WorkbenchError("give the VARIANT to analyse (or --show MAP, --list)")
        if not args.transform:
            raise WorkbenchError("give at least one --transform: int8, nbit:BITS or prune:AMOUNT")
        from core.analysis.sensitivity import Settings, parse_transforms, run_sensitivity
        from core.errors import StepCancelled

        transforms = parse_transforms(args.transform)
        settings = Settings(examples=args.examples, seed=args.seed, grouping=args.by, threads=args.threads)
        bar = Progress()
        bar.total, bar.label = 1, f"sensitivity of variant {args.variant}"
        cancel, previous = _cancel_on_sigint()
        from core import protocol as p

        try:
            with _open(args, create=False) as store:
                map_id = run_sensitivity(
                    store, args.variant, transforms, settings,
                    progress=lambda f, m="": bar(p.Progress(node=0, index=0, fraction=f, message=m)),
                    cancelled=cancel.is_set, log=lambda message: bar._line(message) if args.verbose else None)
        except StepCancelled:
            bar._line("cancelled; the cells measured so far are kept ('workbench-cli sensitivity --list')")
            return EXIT_CANCELLED
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        bar._line(f"sensitivity map {map_id} stored")
        args.show = map_id
    with _open(args) as store:
        m = sensitivity_map(store, args.show)
    if args.format == "text":
        print(describe(m))
        print()
        columns, rows = sensitivity_grid(m)
        _print_table(columns, rows)
        if args.output:
            _write_or_print(export_sensitivity(m, "markdown"), args.output, f"map {m.id} as Markdown")
        return EXIT_OK
    _write_or_print(export_sensitivity(m, args.format), args.output, f"map {m.id} as {args.format}")
    return EXIT_OK


def _number_arg(cast: Any, ok: Any, why: str) -> Any:
    """An argparse type: ``cast(text)`` when ``ok`` of it, else the error ``why`` (NaN, infinity and
    out-of-range values are refused, never planned with)."""
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if cast is int else ''}number") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(why.format(text=text, value=value))
        return value
    return parse


_finite_float = _number_arg(float, math.isfinite, "'{text}' is not a finite number")
_positive_int = _number_arg(int, lambda value: value > 0, "{value} is not above 0")


def cmd_mixed_precision(args: argparse.Namespace) -> int:
    from core.analysis.mixed import add_to_chain, plan, uniform
    from core.recipe import load_recipe, save_recipe
    from core.store import sensitivity_map

    with _open(args) as store:
        m = sensitivity_map(store, args.sensitivity)
        max_drop, target_bytes = args.max_drop, None if args.target_mb is None else round(args.target_mb * 1_000_000)
        rival = args.size_of_uniform if args.size_of_uniform is not None else args.drop_of_uniform
        if rival is not None:  # the budget is the map's own prediction for every part at that width
            same = uniform(m, rival, scheme=args.scheme, estimate=args.estimate)
            print(f"uniform {rival}-bit as the map predicts it: {same.predicted_bytes / 1e6:.2f} MB, drop "
                  f"{same.predicted_drop:.2f} points")
            if args.size_of_uniform is not None:
                target_bytes = same.predicted_bytes
            else:
                max_drop = same.predicted_drop
        chosen = plan(m, scheme=args.scheme, max_drop=max_drop, target_bytes=target_bytes, estimate=args.estimate,
                      min_bits=args.min_bits, max_bits=args.max_bits)
        if args.recipe:
            recipe = load_recipe(args.recipe)
        else:
            from core.analysis.source import recipe_for_variant

            recipe = recipe_for_variant(store, m.variant_id)
    for line in chosen.lines():
        print(line)
    out = add_to_chain(recipe, chosen)
    try:
        save_recipe(out, args.output)
    except OSError as exc:
        raise WorkbenchError(f"Cannot write {args.output}: {exc.strerror or exc}") from None
    source = args.recipe or f"the chain that made variant {m.variant_id}"
    print(f"wrote {args.output}: {source} + {chosen.step} with this assignment; 'workbench-cli run {args.output}' "
          "measures it")
    return EXIT_OK


def cmd_disagreements(args: argparse.Namespace) -> int:
    from core.analysis.disagreements import compare_variants, export_disagreements

    with _open(args) as store:
        report = compare_variants(store, args.a, args.b)
    _write_or_print(export_disagreements(report, args.format), args.output, f"{len(report.rows)} disagreement(s)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="results database file (default: $WORKBENCH_DB or the app-data folder)")
    parser = argparse.ArgumentParser(prog="workbench-cli", description="Compression Workbench, headless.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="run a recipe (YAML or JSON)")
    p.add_argument("recipe")
    p.add_argument("--artifacts", help="folder for variant artifacts (default: beside the database)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the worker's log output")
    p.add_argument("-y", "--yes", action="store_true",
                   help="go ahead with a large run (over 200 variants, or artifacts nearly filling the drive)")
    p.add_argument("--ray", metavar="auto|HOST:PORT",
                   help="make the sweep's branches on this Ray cluster (this machine must be one of its nodes; "
                        "'auto': RAY_ADDRESS or the one started here); docs/CLUSTER.md")
    p.add_argument("--shared-artifacts", metavar="DIR",
                   help="with --ray: an artifacts folder every node mounts at this same path (artifacts are then "
                        "written there by the nodes instead of travelling through Ray)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", parents=[common], help="continue a failed, cancelled or interrupted run")
    p.add_argument("run", type=int)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--ray", metavar="auto|HOST:PORT", help="make the remaining branches on this Ray cluster")
    p.add_argument("--shared-artifacts", action="store_true",
                   help="with --ray: the run's artifacts folder is mounted at the same path on every node")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("validate", parents=[common], help="check a recipe and list every problem")
    p.add_argument("recipe")
    p.add_argument("--artifacts", help="where the run would write artifacts, for the disk estimate "
                                       "(default: beside the database)")
    p.add_argument("-y", "--yes", action="store_true", help="accept a large run (see run --yes)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("runs", parents=[common], help="list runs")
    p.add_argument("--model", help="only runs of this model reference")
    p.add_argument("--status", choices=["running", "finished", "failed", "cancelled", "interrupted"])
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("label", parents=[common], help="name, tag or annotate a run")
    p.add_argument("run", type=int)
    p.add_argument("--name", help="a name for the run ('' clears it)")
    p.add_argument("--tags", help="comma-separated tags, replacing the run's tags ('' clears them)")
    p.add_argument("--note", help="a free-text note ('' clears it)")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("delete", parents=[common], help="delete a run, its variants and its artifact folder")
    p.add_argument("run", type=int)
    p.add_argument("--force", action="store_true",
                   help="also when other runs reused its variants from the cache (their artifacts go too)")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("gc", parents=[common], help="remove artifact folders no run refers to, and empty folders")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("show", parents=[common], help="one run and its variants")
    p.add_argument("run", type=int)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("compare", parents=[common], help="variants side by side")
    p.add_argument("variants", type=int, nargs="+", metavar="VARIANT")
    p.add_argument("--format", choices=["csv", "markdown", "latex", "json"], default="markdown")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", parents=[common], help="export result tables")
    p.add_argument("--format", choices=["csv", "markdown", "latex", "json"], required=True)
    p.add_argument("--run", type=int, action="append", help="only this run (repeatable)")
    p.add_argument("--variant", type=int, action="append", help="only this variant (repeatable)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("steps", help="list the compression steps")
    p.add_argument("--json", action="store_true", help="with config fields, as JSON")
    p.set_defaults(func=cmd_steps)

    p = sub.add_parser("tasks", help="list the tasks")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("evaluate", help="evaluate one model on a task's dev split")
    p.add_argument("model")
    p.add_argument("--task", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sensitivity", parents=[common], help="per-layer sensitivity of a variant to a transform")
    p.add_argument("variant", type=int, nargs="?", metavar="VARIANT")
    p.add_argument("--transform", action="append", default=[], metavar="T",
                   help="int8, nbit:BITS or prune:AMOUNT (repeatable)")
    p.add_argument("--examples", type=int, default=400, help="dev examples, a seeded sample (default 400)")
    p.add_argument("--by", choices=["layer", "role"], default="layer",
                   help="one row per layer (with embeddings and head) or per role across layers (query, key, ...)")
    p.add_argument("--seed", type=int, default=0, help="picks the dev sample and the bootstrap resamples")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--show", type=int, metavar="MAP", help="print or export a stored map instead")
    p.add_argument("--list", action="store_true", help="list stored maps (of VARIANT, when given)")
    p.add_argument("--format", choices=["text", "csv", "markdown", "json"], default="text")
    p.add_argument("-o", "--output", help="write the export to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per measured cell")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("mixed-precision", parents=[common],
                       help="pick bits per layer from a sensitivity map and write the recipe")
    p.add_argument("--sensitivity", type=int, required=True, metavar="MAP")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--target-mb", type=_finite_float, help="the artifact must fit in this many MB (least drop)")
    budget.add_argument("--max-drop", type=_finite_float, help="at most this many points of the metric lost (smallest)")
    budget.add_argument("--size-of-uniform", type=_positive_int, metavar="BITS",
                        help="within the predicted size of every part at BITS (least drop): to beat uniform BITS-bit")
    budget.add_argument("--drop-of-uniform", type=_positive_int, metavar="BITS",
                        help="within the predicted drop of every part at BITS (smallest): to be smaller than uniform "
                             "BITS-bit at no more loss (with --max-bits BITS)")
    p.add_argument("--estimate", choices=["interval", "point"], default="interval",
                   help="a choice's drop: the pessimistic end of its paired 95 %% interval (default) or the measured "
                        "change (gains read as 0)")
    p.add_argument("--min-bits", type=_positive_int, metavar="B", help="choose no width below B bits (e.g. 5: no 4-bit parts)")
    p.add_argument("--max-bits", type=_positive_int, metavar="B", help="choose no width above B bits, and no float")
    p.add_argument("--scheme", choices=["nbit", "int8"], default="nbit",
                   help="nbit: bits per layer (quantize.linear_nbit); int8: layers kept in float (quantize.dynamic_int8)")
    p.add_argument("--recipe", help="append the step to this recipe (default: the chain that made the map's variant)")
    p.add_argument("-o", "--output", required=True, help="the recipe file to write")
    p.set_defaults(func=cmd_mixed_precision)

    p = sub.add_parser("disagreements", parents=[common], help="dev examples where two variants disagree")
    p.add_argument("a", type=int, metavar="A")
    p.add_argument("b", type=int, metavar="B")
    p.add_argument("--format", choices=["text", "csv", "markdown", "json"], default="text")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_disagreements)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        _err(str(exc))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_CANCELLED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
