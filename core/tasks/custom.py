"""Custom tasks from the user's own files: CSV, TSV, JSON, JSONL or parquet with a column mapping.

``custom_task(path, text="review", label="stars")`` reads the file once (so a wrong column is
reported immediately, with the columns found, and so are empty cells in the mapped columns, with
their rows), maps string labels to ids in sorted order, and
registers the task as ``custom:<name>``. Train/dev come from two files, or from a seeded split of
one. Binary classification is scored MRPC-style (accuracy + F1), multi-class with accuracy and
macro-F1, regression with Pearson/Spearman.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from core.errors import DataError
from core.tasks import metrics
from core.tasks.base import Task, register_task

_STRATIFY_OFF = "(recipe: data.stratify; window: the custom-data dialog's \"Keep each label's share\" box)"

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# Fewest rows worth training on and evaluating: below this a metric says nothing (a 2-row file
# used to train on 1 row and report accuracy 0).
MIN_TRAIN_ROWS = 8
MIN_DEV_ROWS = 4


def read_table(path: Path) -> dict[str, list[Any]]:
    """Read a local data file into columns. Errors name the file and what is wrong with it."""
    import pandas as pd

    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file: choose a file inside it "
                        f"({', '.join(sorted(FORMATS))})")
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use one of {', '.join(sorted(FORMATS))}")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif fmt == "tsv":  # GLUE-style TSV: quotes are literal characters
            frame = pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
        elif fmt == "jsonl":
            frame = _read_jsonl(path)
        elif fmt == "json":
            frame = _read_json(path)
        else:
            frame = pd.read_parquet(path)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot be read as {fmt}: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path} has no rows")
    return {str(c): frame[c].tolist() for c in frame.columns}


def _not_utf8(path: Path) -> DataError:
    """Where the first byte that is not UTF-8 is, and how to re-save the file."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        where = ""
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        where = f": byte 0x{raw[exc.start]:02X} on line {line} is not UTF-8"
    return DataError(
        f"{path} is not UTF-8 text{where} (likely Latin-1 or Windows-1252, as spreadsheets often save). "
        "Save it as UTF-8 (in a spreadsheet: Save as 'CSV UTF-8'; or iconv -f latin1 -t utf-8) and choose it again"
    )


def _read_jsonl(path: Path) -> Any:
    """JSON lines, one object per line; a bad line is reported by its number (pandas gives a byte offset)."""
    import pandas as pd

    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))  # so the column points into the line
            except ValueError as exc:
                why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise DataError(f"{path}: line {number} is not valid JSON ({why}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {number} is not a JSON object ({{\"column\": value, ...}})")
            rows.append(row)
    return pd.DataFrame(rows)


def _read_json(path: Path) -> Any:
    import pandas as pd

    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        first = text.lstrip().split("\n", 1)[0]
        if text.lstrip().startswith("{") and _is_json_object(first):  # JSON lines with a .json suffix
            return _read_jsonl(path)
        raise DataError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    if isinstance(data, dict):  # {"data": [...]} or a dict of columns
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 else data
    return pd.DataFrame(data)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _column(table: dict[str, list[Any]], name: str, role: str, path: Path) -> list[Any]:
    if name not in table:
        raise DataError(
            f"{path}: no column '{name}' for the {role}; columns found: {', '.join(table) or '(none)'}"
        )
    return table[name]


# Row numbers an empty-cell message lists; the rest are counted, so a long list stays readable.
SHOWN_ROWS = 5

# What to put in an empty cell, by the column's role (the roles _column names).
_FILL = {"text": "the text", "second text": "the text", "label": "a label", "score": "a number"}


def _is_empty(v: Any) -> bool:
    """No value (None, NaN, pandas' NA) or only whitespace: a CSV's empty cell is '' (read with
    keep_default_na=False), JSON's null or missing key is None or NaN, parquet's null NaN or NA."""
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    if isinstance(v, float):
        return math.isnan(v)
    return type(v).__name__ in ("NAType", "NaTType")  # pandas.NA / NaT, without importing pandas here


def _refuse_empty(values: list[Any], column: str, role: str, path: Path,
                  empty: Callable[[Any], bool] = _is_empty) -> None:
    """Refuse a column with empty cells, saying how many and the first few rows: kept, an empty label
    would silently be a class of its own, an empty text a sentence of nothing."""
    rows = [i + 1 for i, v in enumerate(values) if empty(v)]
    if not rows:
        return
    where = f"{path}: row {rows[0]} has no value in column '{column}' (the {role}"
    if len(rows) == 1:
        where += "; row 1 is the first row of data)"
        what = "that row"
    else:
        more = rows[1:SHOWN_ROWS]
        rest = len(rows) - 1 - len(more)
        others = ", ".join(map(str, more)) + (f" and {rest} more" if rest else "")
        others = ("does row " if len(more) == 1 and not rest else "do rows ") + others
        where += f"), nor {others} ({len(rows)} of {len(values)} rows; row 1 is the first row of data)"
        what = "those rows"
    raise DataError(f"{where}. Fill in {_FILL.get(role, 'a value')} or remove {what}")


def _texts(values: list[Any], column: str, path: Path, role: str = "text") -> list[str]:
    _refuse_empty(values, column, role, path)
    return [str(v) for v in values]


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, float):
        return v.is_integer()
    try:
        int(str(v).strip())
        return True
    except ValueError:
        return False


def label_vocabulary(values: Sequence[Any]) -> list[str]:
    """Distinct labels in a deterministic order: numeric order if all are integers, else sorted text."""
    distinct = {v for v in values if v is not None}
    if distinct and all(_is_int(v) for v in distinct):
        return [str(n) for n in sorted({int(float(str(v))) for v in distinct})]
    return sorted({str(v) for v in distinct})


def _label_key(v: Any) -> str:
    """One spelling per label: 1, 1.0 and "1" are the same class; other values by their text."""
    return str(int(float(str(v)))) if _is_int(v) else str(v)


def _no_score(v: Any) -> bool:
    """An empty cell, or one that reads as NaN ('nan', 'NaN'): a target that is not there."""
    if _is_empty(v):
        return True
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False  # not a number at all: _scores names it


def _scores(values: list[Any], column: str, path: Path) -> list[float]:
    _refuse_empty(values, column, "score", path, empty=_no_score)
    out = []
    for i, v in enumerate(values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise DataError(f"{path}: row {i + 1} of column '{column}' is not a number: {v!r}") from None
        if math.isinf(x):  # no regression target is infinite: a typo or an overflow upstream
            raise DataError(f"{path}: row {i + 1} of column '{column}' is not a finite number: {v!r}. Correct it "
                            "or remove that row")
        out.append(x)
    return out


def _classification_scores(predictions: Any, references: Any) -> dict[str, float]:
    return metrics.accuracy_f1(predictions, references) | metrics.matthews(predictions, references)


def _multiclass_scores(predictions: Any, references: Any) -> dict[str, float]:
    return metrics.accuracy_macro_f1(predictions, references) | metrics.matthews(predictions, references)


def custom_task(
    path: str | Path,
    *,
    text: str,
    text_pair: str | None = None,
    label: str,
    kind: Literal["classification", "regression"] = "classification",
    dev_path: str | Path | None = None,
    dev_fraction: float = 0.2,
    stratify: bool = False,
    seed: int = 0,
    name: str | None = None,
    primary_metric: str | None = None,
    register: bool = True,
) -> Task:
    """Build (and register as ``custom:<name>``) a task from local files with a column mapping."""
    if kind not in ("classification", "regression"):
        raise DataError(f"kind must be 'classification' or 'regression', not '{kind}'")
    if stratify and kind != "classification":
        raise DataError("stratify keeps each label's share of the rows in dev: it needs classification labels, "
                        f"and this task is a regression; turn stratify off {_STRATIFY_OFF}")
    if stratify and dev_path is not None:
        raise DataError("stratify applies to the seeded split of one file, and a dev file is given: remove one of them")
    path = Path(path).expanduser()
    files = {"train": path} if dev_path is None else {"train": path, "dev": Path(dev_path).expanduser()}
    raw: dict[str, dict[str, list[Any]]] = {}
    for split, file in files.items():
        table = read_table(file)
        cols: dict[str, list[Any]] = {"text": _texts(_column(table, text, "text", file), text, file)}
        if text_pair is not None:
            cols["text_pair"] = _texts(_column(table, text_pair, "second text", file), text_pair, file,
                                       role="second text")
        values = _column(table, label, "label" if kind == "classification" else "score", file)
        if kind == "regression":
            cols["label"] = _scores(values, label, file)
        else:
            _refuse_empty(values, label, "label", file)  # else '' would be a class of its own
            cols["label"] = [_label_key(v) for v in values]
        raw[split] = cols
    if dev_path is None:
        raw = _split(raw["train"], dev_fraction, seed, path, stratify=stratify)

    label_names: tuple[str, ...] = ()
    if kind == "classification":
        label_names = tuple(label_vocabulary(raw["train"]["label"] + raw["dev"]["label"]))
        if len(label_names) < 2:
            raise DataError(f"{path}: column '{label}' has a single label ({label_names[0]}); need at least 2")
        ids = {n: i for i, n in enumerate(label_names)}
        for cols in raw.values():
            cols["label"] = [ids[v] for v in cols["label"]]
    _check_row_counts(raw, files, dev_fraction)

    cache: dict[str, Any] = {}

    def load(split: str) -> Any:
        if split not in cache:
            import datasets

            cache[split] = datasets.Dataset.from_dict(raw[split])
        return cache[split]

    if kind == "regression":
        head, num_labels, scorer, resample = "regression", 1, metrics.pearson_spearman, metrics.resample_pearson
        metric_names: tuple[str, ...] = ("pearson", "spearman", "pearson_spearman_mean")
    elif len(label_names) == 2:
        head, num_labels, scorer, resample = "classification", 2, _classification_scores, metrics.resample_binary
        metric_names = ("accuracy", "f1", "matthews_correlation")
    else:
        head, num_labels, scorer, resample = ("classification", len(label_names), _multiclass_scores,
                                              metrics.resample_multiclass)
        metric_names = ("accuracy", "f1", "matthews_correlation")
    primary = primary_metric or metric_names[0]
    if primary not in metric_names:
        raise DataError(f"primary metric '{primary}' is not one of {', '.join(metric_names)}")
    name = name or path.stem
    if dev_path is None:
        origin = f"{path.name}: seeded split (seed {seed}, {dev_fraction:.0%} dev{', each label in that share' if stratify else ''})"
    else:
        origin = f"train = {path.name}, dev = {Path(dev_path).name}"
    task = Task(
        id=f"custom:{name}",
        title=f"{name} (custom {kind})",
        family="custom",
        head=head,
        num_labels=num_labels,
        metrics=metric_names,
        primary_metric=primary,
        loader=load,
        columns=lambda split: raw[split],
        scorer=scorer,
        resample=resample,
        pair=text_pair is not None,
        note=origin,
        label_names=label_names,
        data_files=(path,) if dev_path is None else (path, Path(dev_path).expanduser()),
    )
    return register_task(task, replace=True) if register else task


def _split(cols: dict[str, list[Any]], dev_fraction: float, seed: int, path: Path,
           stratify: bool = False) -> dict[str, dict[str, list[Any]]]:
    """Seeded train/dev rows; ``stratify``: each label keeps its share of the rows in dev, and has at least one
    row on each side, so a rare class is neither missing from dev nor over-represented in it."""
    n = len(cols["text"])
    if not 0.0 < dev_fraction < 1.0:
        raise DataError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    if n < 2:
        raise DataError(f"{path} has {n} row; at least {rows_needed(dev_fraction)} are needed to train and evaluate "
                        "(or give a separate dev file)")
    # too few rows for any split: the plain one, whose row-count message (_check_row_counts) names the fix
    if stratify and n >= rows_needed(dev_fraction):
        dev_rows, train_rows = _stratified_rows(cols["label"], dev_fraction, seed, path)
    else:
        order = list(range(n))
        random.Random(seed).shuffle(order)
        n_dev = _dev_rows(n, dev_fraction)
        dev_rows, train_rows = sorted(order[:n_dev]), sorted(order[n_dev:])
    return {
        "train": {k: [v[i] for i in train_rows] for k, v in cols.items()},
        "dev": {k: [v[i] for i in dev_rows] for k, v in cols.items()},
    }


def _stratified_rows(labels: list[Any], dev_fraction: float, seed: int, path: Path) -> tuple[list[int], list[int]]:
    """Each label's rows shuffled (seeded) and ``dev_fraction`` of them, rounded, to dev, but at least one and
    never all: scikit-learn's stratified split rounds a rare label's share down to no dev row at all (2 rows
    of 62 at 20 %), which would leave its class unscored."""
    rows_of: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        rows_of.setdefault(label, []).append(i)
    single = sorted(str(label) for label, rows in rows_of.items() if len(rows) < 2)
    if single:
        raise DataError(f"{path}: a stratified split needs at least 2 rows of each label, one for each side, and "
                        f"{', '.join(repr(s) for s in single[:5])} {'has' if len(single) == 1 else 'have'} one; "
                        f"add rows, give a separate dev file, or turn stratify off {_STRATIFY_OFF}")
    rng = random.Random(seed)
    dev: list[int] = []
    for label in sorted(rows_of, key=str):
        rows = rows_of[label]
        rng.shuffle(rows)
        dev += rows[: min(len(rows) - 1, max(1, round(len(rows) * dev_fraction)))]
    chosen = set(dev)
    return sorted(dev), [i for i in range(len(labels)) if i not in chosen]


def _dev_rows(n: int, dev_fraction: float) -> int:
    """Rows the seeded split puts in dev (see _split)."""
    return min(n - 1, max(1, round(n * dev_fraction)))


def rows_needed(dev_fraction: float) -> int:
    """The fewest rows of one file whose seeded split has MIN_TRAIN_ROWS and MIN_DEV_ROWS."""
    n = MIN_TRAIN_ROWS + MIN_DEV_ROWS
    while _dev_rows(n, dev_fraction) < MIN_DEV_ROWS or n - _dev_rows(n, dev_fraction) < MIN_TRAIN_ROWS:
        n += 1
    return n


def _check_row_counts(raw: dict[str, dict[str, list[Any]]], files: dict[str, Path], dev_fraction: float) -> None:
    train, dev = len(raw["train"]["text"]), len(raw["dev"]["text"])
    if train >= MIN_TRAIN_ROWS and dev >= MIN_DEV_ROWS:
        return
    if "dev" not in files:
        n = train + dev
        raise DataError(
            f"{files['train']} has {n} rows: the seeded split (dev_fraction {dev_fraction:g}) leaves {train} to train "
            f"on and {dev} to evaluate on; at least {MIN_TRAIN_ROWS} training and {MIN_DEV_ROWS} evaluation rows are "
            "needed, so at least "
            f"{rows_needed(dev_fraction)} rows in this file (or give a separate dev file)"
        )
    for split, count, least, use in (("train", train, MIN_TRAIN_ROWS, "training"), ("dev", dev, MIN_DEV_ROWS, "evaluation")):
        if count < least:
            raise DataError(f"{files[split]} has {count} rows; at least {least} are needed for {use}")


_FROM_SPEC: dict[tuple[Any, ...], Task] = {}


def task_from_spec(spec: Any) -> Task:
    """The task of a recipe's ``data:`` (core.recipe.DataSpec), registered as ``custom:<name>``.

    Validation runs on every edit in the window: a file is read again only when the mapping or the
    file itself (size, modification time) changed.
    """
    files = [Path(p).expanduser() for p in (spec.path, spec.dev_path) if p]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) if f.is_file() else (str(f),) for f in files)
    key = (spec, stamp)
    task = _FROM_SPEC.get(key)
    if task is None:
        task = custom_task(spec.path, text=spec.text, text_pair=spec.text_pair, label=spec.label, kind=spec.kind,
                           dev_path=spec.dev_path, dev_fraction=spec.dev_fraction, stratify=spec.stratify,
                           name=spec.name or Path(spec.path).stem, register=False)
        _FROM_SPEC[key] = task
    return register_task(task, replace=True)
