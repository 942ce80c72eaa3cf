"""The battery of bad inputs (issue 16), as a new user would try them: recipes, values, YAML tricks,
model folders, data files, databases and command lines, each through ``workbench-cli`` in-process.

For every case: the exit code; a message that names the problem and a fix; never "Internal error"
or a traceback; no worker started; and not one byte of any input or database file changed (every
file of the case and the shared model folder hashed before and after)."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tests.core.fakes  # noqa: F401  (registers the test-only steps)
from core.cli import main
from core.run import process
from tests.helpers import SPELLING_VOCAB, tiny_bert_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("battery-models")
    return {"tiny": tiny_bert_folder(root / "tiny"), "spelling": tiny_bert_folder(root / "spelling", vocab=SPELLING_VOCAB)}


@dataclass
class Ctx:
    """One case's folder, the shared models and a monkeypatch."""

    folder: Path
    models: dict[str, Path]
    monkeypatch: pytest.MonkeyPatch

    @property
    def tiny(self) -> Path:
        return self.models["tiny"]

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path

    def recipe(self, body: str, *, model: str | None = None, name: str = "recipe.yaml") -> Path:
        """A recipe file: ``body`` after a model and sst2 lines (``{model}`` and ``{dir}`` filled in)."""
        head = f"model: {model if model is not None else self.tiny}\ntask: sst2\n"
        return self.write(name, (head + body).replace("{model}", str(self.tiny)).replace("{dir}", str(self.folder)))

    def model_copy(self, name: str = "model") -> Path:
        return Path(shutil.copytree(self.tiny, self.folder / name))

    def db(self, kind: str) -> Path:
        from core.store import SCHEMA_VERSION, open_store

        path = self.folder / "w.sqlite"
        open_store(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
            if kind == "newer":
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 3}")
        if kind == "corrupt":
            data = bytearray(path.read_bytes())
            data[200:4096] = b"\xff" * (4096 - 200)
            path.write_bytes(bytes(data))
        return path


Setup = Callable[[Ctx], list[str]]


@dataclass
class Case:
    id: str
    setup: Setup
    problem: str  # names the problem (a substring of the output)
    fix: str  # names a fix
    code: int = 2


def _validate(body: str, **kw: Any) -> Setup:
    return lambda c: ["validate", str(c.recipe(body, **kw))]


def _run(body: str, **kw: Any) -> Setup:
    return lambda c: ["run", str(c.recipe(body, **kw)), "--db", str(c.folder / "w.sqlite")]


def _chain(step: str, config: str = "{}") -> str:
    return f"chain:\n  - step: {step}\n    config: {config}\n"


def _alias_bomb(c: Ctx) -> list[str]:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return ["validate", str(c.recipe("\n".join(lines) + "\n" + _chain("test.scale", "{factor: *a8}")))]


def _big_file(c: Ctx) -> list[str]:
    path = c.folder / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(64 * 2**20)
    return ["validate", str(path)]


def _sweep(values: int, *, run: bool = False) -> Setup:
    factors = ", ".join(str(round(0.0009 * i, 4)) for i in range(1, values + 1))
    body = _chain("test.scale", f"{{factor: [{factors}]}}")
    return _run(body) if run else _validate(body)


def _full_disk(c: Ctx) -> list[str]:
    from core.recipe import estimate

    usage = collections.namedtuple("usage", "total used free")
    c.monkeypatch.setattr(estimate.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 5 * 10**8, 5 * 10**8))
    return ["run", str(c.recipe(_chain("test.scale"))), "--db", str(c.folder / "w.sqlite")]


def _model(damage: Callable[[Path], Any], **kw: Any) -> Setup:
    def setup(c: Ctx) -> list[str]:
        folder = c.model_copy()
        damage(folder)
        return ["validate", str(c.recipe("", model=str(folder)))]

    return setup


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _only_pickle(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").unlink()


def _small_embeddings(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 20}))


def _manifest(head: str, fmt: Any = 1) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        manifest = {"format": fmt, "task": "sst2", "head": head, "transforms": [], "aliases": {}, "traits": []}
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return write


def _data(text: str | bytes, *, name: str = "reviews.csv", mapping: str = "text: review, label: stars",
          extra: str = "") -> Setup:
    def setup(c: Ctx) -> list[str]:
        c.write(name, text)
        body = f"model: {c.tiny}\ndata: {{path: {name}, {mapping}{extra}}}\n"
        return ["validate", str(c.write("recipe.yaml", body))]

    return setup


_ROWS = "".join(f"{'good' if i % 2 else 'bad'} movie {i},{i % 2}\n" for i in range(40))


def _db_case(kind: str, argv: list[str]) -> Setup:
    def setup(c: Ctx) -> list[str]:
        db = c.db(kind) if kind else c.folder / "w.sqlite"
        if kind == "":
            from core.store import open_store

            open_store(db).close()
        return [a.replace("{db}", str(db)).replace("{recipe}", str(c.recipe(_chain("test.scale")))) for a in argv]

    return setup


def _finished_run(c: Ctx) -> list[str]:
    from core.recipe import Recipe
    from core.run.runner import run_recipe
    from tests.core.fakes import tiny_recipe

    db = c.folder / "w.sqlite"
    result = run_recipe(Recipe.from_dict(tiny_recipe(c.tiny, [])), db_url_or_path=db,
                        artifacts_dir=c.folder / "artifacts")
    return ["resume", str(result.run_id), "--db", str(db)]


CASES = [
    # --- recipe structure ---------------------------------------------------------------------
    Case("empty recipe", lambda c: ["validate", str(c.write("r.yaml", ""))], "a recipe must be a mapping", "start from a shipped recipe"),
    Case("a list, not a mapping", lambda c: ["validate", str(c.write("r.yaml", "- a\n- b\n"))],
         "a recipe must be a mapping", "start from a shipped recipe"),
    Case("yaml syntax error", lambda c: ["validate", str(c.write("r.yaml", "model: x\n  task: [\n"))],
         "YAML syntax error", "correct the YAML at that line"),
    Case("json syntax error", lambda c: ["validate", str(c.write("r.json", '{"model": "x",}'))],
         "JSON syntax error", "correct the JSON at that line"),
    Case("unknown top-level key", _validate("chian: []\n"), "unknown recipe key(s) chian", "a recipe has"),
    Case("model missing", lambda c: ["validate", str(c.write("r.yaml", "task: sst2\n"))],
         "'model' is missing", "add 'model: all-MiniLM-L6-v2'"),
    Case("task missing", lambda c: ["validate", str(c.write("r.yaml", f"model: {c.tiny}\n"))],
         "'task' is missing", "add 'task: sst2'"),
    Case("model is a number", lambda c: ["validate", str(c.write("r.yaml", "model: 3\ntask: sst2\n"))],
         "'model' is missing or not text", "a model folder or a hub id"),
    Case("chain is a mapping", _validate("chain: {step: finetune}\n"), "chain must be a list", "'- step: finetune'"),
    Case("chain entry is a number", _validate("chain: [5]\n"), "step 1 must be a mapping", "'step' and 'config'"),
    Case("chain entry unknown key", _validate("chain:\n  - step: finetune\n    confg: {}\n"),
         "unknown key(s) confg", "an entry has step, version, enabled, config"),
    Case("chain entry without step", _validate("chain:\n  - config: {}\n"), "has no step id", "step: <id>"),
    Case("unknown step", _validate(_chain("prune.magnitude")), "unknown step 'prune.magnitude'",
         "prune.global_magnitude"),
    Case("unknown config field", _validate(_chain("finetune", "{learning_rate: 0.1}")),
         "unknown field 'learning_rate'", "use one of: lr"),
    Case("config is a list", _validate("chain:\n  - step: finetune\n    config: [1]\n"),
         "config must be a mapping", "'field: value' lines"),
    Case("enabled is text", _validate("chain:\n  - step: finetune\n    enabled: maybe\n"),
         "enabled must be true or false", "true or false"),
    Case("version zero", _validate("chain:\n  - step: finetune\n    version: 0\n"),
         "version must be a whole number >= 1", ">= 1"),
    Case("format from the future", _validate("format: 99\n"), "newer than this workbench reads", "upgrade the workbench"),
    Case("format not a number", _validate("format: one\n"), "format must be a whole number", "write 'format: 1'"),
    Case("seed is text", _validate("seed: lucky\n"), "seed must be a whole number", "e.g. 'seed: 0'"),
    Case("seed beyond 64 bits", _validate("seed: 18446744073709551616\n"), "seed must fit in 64 bits",
         "use a smaller seed"),
    Case("name is a list", _validate("name: [a, b]\n"), "'name' must be text", "quote it: name: 'my text'"),
    Case("teacher is empty", _validate("teacher: ''\n"), "'teacher' must be 'parent' or a model reference",
         "write 'teacher: parent'"),
    Case("measure is a number", _validate("measure: 5\n"), "measure must be a mapping", "leave it out for its default (eval_limit 500"),
    Case("measure unknown key", _validate("measure: {repeats: 5}\n"), "unknown measurement setting(s) repeats",
         "known: eval_limit"),
    Case("measure negative", _validate("measure: {eval_limit: -5}\n"), "measure.eval_limit must be >= 1", ">= 1"),
    Case("measure huge", _validate("measure: {latency_repeats: 100000000}\n"),
         "measure.latency_repeats must be <= 10,000", "<= 10,000"),
    Case("measure nan", _validate("measure: {eval_batch_size: .nan}\n"), "eval_batch_size must be a whole number",
         "whole number"),
    Case("measure zero threads", _validate("measure: {threads: 0}\n"), "measure.threads must be >= 1", ">= 1"),
    # --- step values --------------------------------------------------------------------------
    Case("lr nan", _validate(_chain("finetune", "{lr: .nan}")), "Learning rate (lr) must be a finite number",
         "set lr to a value > 0.0 and <= 1.0"),
    Case("epochs inf", _validate(_chain("finetune", "{epochs: .inf}")), "Epochs (epochs) must be a finite number",
         "set epochs to a value"),
    Case("amount -inf", _validate(_chain("prune.global_magnitude", "{amount: -.inf}")),
         "Amount (amount) must be a finite number", "set amount to a value >= 0.0 and <= 0.95"),
    Case("amount negative", _validate(_chain("prune.global_magnitude", "{amount: -0.5}")),
         "Amount (amount) must be >= 0.0; got -0.5", "set amount to a value >= 0.0"),
    Case("amount overflowing", _validate(_chain("prune.global_magnitude", "{amount: 1.0e+400}")),
         "must be a finite number", "set amount to a value"),
    Case("amount is text", _validate(_chain("prune.global_magnitude", "{amount: lots}")),
         "Amount (amount) must be a number, got the text 'lots'", "set amount to a value"),
    Case("bits out of range", _validate(_chain("quantize.linear_nbit", "{bits: 64}")), "Bits (bits) must be <= 16",
         "set bits to a value >= 1 and <= 16"),
    Case("bits fractional", _validate(_chain("quantize.linear_nbit", "{bits: 8.5}")), "Bits (bits) must be a whole number",
         "set bits to a value"),
    Case("batch size boolean", _validate(_chain("finetune", "{batch_size: true}")), "must be a whole number, got True",
         "set batch_size to a value"),
    Case("bad choice", _validate(_chain("quantize.dynamic_int8", "{engine: gpu}")),
         "must be one of x86, fbgemm; got 'gpu'", "set engine to a value one of x86, fbgemm"),
    Case("sweep of a fixed field", _validate(_chain("quantize.dynamic_int8", "{engine: [x86, fbgemm]}")),
         "cannot be swept", "give a single value"),
    Case("empty sweep", _validate(_chain("finetune", "{lr: []}")), "the sweep list is empty", "give at least one value"),
    Case("nan inside a sweep", _validate(_chain("finetune", "{lr: [0.0001, .nan]}")), "must be a finite number",
         "set lr to a value"),
    Case("megabyte string", _validate(_chain("quantize.dynamic_int8", "{engine: " + "x" * 1_000_000 + "}")),
         "1,000,000 characters", "set engine to a value one of"),
    Case("five thousand wrong values", _validate(_chain("finetune", "{batch_size: [" + "0," * 5_000 + "0]}")),
         "must be >= 1; got 0", "set batch_size to a value >= 1"),
    Case("keep_layers not numbers", _validate(_chain("distill", "{keep_layers: 'a,b'}")),
         "must be comma-separated layer numbers like 2,4,6", "set keep_layers to a value"),
    Case("distill trains nothing", _validate(_chain("distill", "{intermediate_epochs: 0, prediction_epochs: 0}")),
         "both 0: nothing would be trained", "set prediction_epochs to a value"),
    Case("json NaN", lambda c: ["validate", str(c.write("r.json", json.dumps(
        {"model": str(c.tiny), "task": "sst2", "chain": [{"step": "finetune", "config": {"lr": float("nan")}}]})))],
        "Learning rate (lr) must be a finite number", "set lr to a value"),
    Case("5000-digit number", _validate("seed: " + "7" * 5000 + "\n"), "a number has more than 4,300 digits",
         "correct the value"),
    # --- YAML tricks and sizes ---------------------------------------------------------------
    Case("alias bomb", _alias_bomb, "YAML alias '*a0'", "write the repeated values out in full"),
    Case("merge key", _validate("base: &b {seed: 1}\n<<: *b\n"), "YAML alias '*b'", "write the repeated values out"),
    Case("deep nesting", _validate("description: " + "[" * 50_000 + "\n"), "nested too deeply",
         "check that this is the recipe file"),
    Case("64 MB recipe", _big_file, "a recipe is at most 4,194,304", "check that this is the recipe file"),
    Case("latin-1 recipe", lambda c: ["validate", str(c.write("r.yaml", "model: m\ntask: sst2\nname: caf\xe9\n"
                                                                        .encode("latin-1")))],
         "line 3 is not UTF-8", "save the recipe as UTF-8"),
    Case("recipe is a folder", lambda c: ["validate", str(c.folder)], "Cannot read recipe", "Is a directory"),
    Case("recipe missing", lambda c: ["validate", str(c.folder / "nope.yaml")], "Cannot read recipe",
         "No such file or directory"),
    Case("1,000-value sweep", _sweep(1000), "1,001 variants is more than 200", "add --yes to go ahead"),
    Case("1,000-value sweep run", _sweep(1000, run=True), "1,001 variants is more than 200", "add --yes"),
    Case("170,101 variants", _validate(
        "chain:\n" + "".join(f"  - step: test.scale\n    config: {{factor: [{', '.join(['1.0'] * n)}]}}\n"
                             for n in (100, 1000))), "expands to 100,101 variants", "sweep fewer values"),
    Case("artifacts beyond the free disk", _full_disk, "would leave less than 2.0 GB of the 500.0 MB free",
         "choose another --artifacts folder"),
    # --- chain order and task -------------------------------------------------------------------
    Case("training after int8", _validate("chain:\n  - step: quantize.dynamic_int8\n  - step: finetune\n"),
         "made it no longer trainable", "move 'finetune' before step 1"),
    Case("qa step on classification", _validate(_chain("test.qa_only")), "works only on qa tasks",
         "pick a qa task"),
    Case("distillation without teacher", _validate(_chain("test.distil")), "needs a fine-tuned teacher",
         "add a 'finetune' step before it"),
    Case("unknown task", lambda c: ["validate", str(c.write("r.yaml", f"model: {c.tiny}\ntask: sst3\n"))],
         "sst3", "use one of the listed task ids"),
    # --- model folders ---------------------------------------------------------------------------
    Case("model folder missing", _validate("", model="/nonexistent/model"), "does not exist",
         "choose a complete model folder"),
    Case("model is a file", lambda c: ["validate", str(c.recipe("", model=str(c.write("weights.bin", b"x"))))],
         "is a file; give the folder", "choose a complete model folder"),
    Case("no config.json", _model(lambda f: (f / "config.json").unlink()), "it has no config.json",
         "choose a complete model folder"),
    Case("config.json broken", _model(lambda f: (f / "config.json").write_text("{'a': 1")), "is not valid JSON",
         "choose a complete model folder"),
    Case("config without model_type", _model(lambda f: (f / "config.json").write_text("{}")), "no 'model_type'",
         "choose a complete model folder"),
    Case("no weights", _model(lambda f: (f / "model.safetensors").unlink()), "has no weights",
         "it needs model.safetensors"),
    Case("only a pickle", _model(_only_pickle), "is a Python pickle", "Convert it once to model.safetensors"),
    Case("truncated safetensors", _model(_truncate), "model.safetensors is damaged or not a safetensors file",
         "choose a complete model folder"),
    Case("garbage safetensors", _model(lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 4096)),
         "its header length field says 0 bytes", "choose a complete model folder"),
    Case("no tokenizer", _model(_no_tokenizer), "has no tokenizer", "copy them from where the model came from"),
    Case("tokenizer.json broken", _model(lambda f: (f / "tokenizer.json").write_text("[")),
         "tokenizer.json is damaged or not a tokenizer file", "choose a complete model folder"),
    Case("tokenizer larger than embeddings", _model(_small_embeddings), "embeddings hold 20 rows",
         "the tokenizer belongs to another model"),
    Case("hub id offline", _validate("", model="google-bert/bert-base-uncased"),
         "'google-bert/bert-base-uncased' is not downloaded", "the packaged default all-MiniLM-L6-v2"),
    Case("not a hub id", _validate("", model="my model"), "is neither a model folder nor a hub id",
         "a folder path starts with / or ./"),
    Case("unknown packaged model", _validate("", model="packaged:bert"), "Unknown packaged model 'bert'",
         "packaged models: all-MiniLM-L6-v2"),
    Case("teacher with another vocabulary",
         lambda c: ["validate", str(c.recipe(f"teacher: {c.models['spelling']}\n" + _chain("test.distil")))],
         f"has a vocabulary of {len(SPELLING_VOCAB)} tokens", "share one tokenizer"),
    Case("distill student with another vocabulary", lambda c: ["validate", str(c.recipe(_chain(
        "distill", f"{{student: model, student_model: {c.models['spelling']}}}")))],
         "the student", "use models that share one tokenizer"),
    Case("stored variant with a qa head", _model(_manifest("qa")), "with a qa head; task sst2 needs a classification",
         "choose a variant of this task"),
    Case("tampered manifest", _model(_manifest("classification", fmt="one")), "field 'format'",
         "the manifest was edited or damaged"),
    Case("latency longer than positions", _validate("measure: {latency_seq_len: 512}\n"),
         "measure.latency_seq_len is 512 tokens, but the model takes at most 128", "set measure.latency_seq_len to 128"),
    Case("max_length longer than positions", _validate(_chain("finetune", "{max_length: 1024}")),
         "Max length (max_length) is 1,024 tokens", "set max_length to 128 or less"),
    # --- data files ----------------------------------------------------------------------------
    Case("data file missing", lambda c: ["validate", str(c.write(
        "recipe.yaml", f"model: {c.tiny}\ndata: {{path: nope.csv, text: review, label: stars}}\n"))],
        "nope.csv does not exist", "correct the data file or its column mapping"),
    Case("data path is a folder", lambda c: (c.write("data/x.csv", "a,b\n"), ["validate", str(c.write(
        "recipe.yaml", f"model: {c.tiny}\ndata: {{path: data, text: review, label: stars}}\n"))])[1],
        "is a folder, not a data file", "choose a file inside it"),
    Case("unsupported data format", _data("x", name="reviews.xlsx"), "unsupported file type '.xlsx'",
         "use one of .csv"),
    Case("wrong column", _data("text,label\n" + _ROWS), "no column 'review' for the text",
         "columns found: text, label"),
    Case("two rows", _data("review,stars\ngood,1\nbad,0\n"), "rows", "correct the data file"),
    Case("broken jsonl line", _data('{"review": "a", "stars": 1}\n{"review": \n', name="r.jsonl"),
         "line 2 is not valid JSON", "fix or remove that line"),
    Case("latin-1 csv", _data(("review,stars\n" + "café,1\n" * 20).encode("latin-1")), "is not UTF-8 text",
         "Save it as UTF-8"),
    Case("header only", _data("review,stars\n"), "has no rows", "correct the data file"),
    Case("regression label not a number", _data("review,stars\n" + "ok,high\n" * 20, extra=", kind: regression"),
         "is not a number: 'high'", "correct the data file"),
    Case("dev_fraction above one", _data("review,stars\n" + _ROWS, extra=", dev_fraction: 1.5"),
         "dev_fraction must be a number between 0 and 1", "between 0 and 1"),
    Case("data kind unknown", _data("review,stars\n" + _ROWS, extra=", kind: ranking"),
         "data.kind must be 'classification' or 'regression'", "'classification' or 'regression'"),
    Case("empty text cell", _data('{"review": null, "stars": 1}\n' * 20, name="r.jsonl"), "row 1 has no value",
         "correct the data file"),
    # --- databases -------------------------------------------------------------------------------
    Case("run into a corrupt database", _db_case("corrupt", ["run", "{recipe}", "--db", "{db}"]), "damaged",
         "Restore a backup"),
    Case("runs of a newer database", _db_case("newer", ["runs", "--db", "{db}"]), "newer workbench",
         "upgrade the workbench"),
    Case("database is a folder", lambda c: ["runs", "--db", str(c.folder)], "Is a directory", "choose a database file"),
    Case("database is a text file", lambda c: ["show", "1", "--db", str(c.write("w.sqlite", "hello " * 1000))],
         "is not a workbench results database", "Choose another file with --db"),
    Case("show a run that does not exist", _db_case("", ["show", "42", "--db", "{db}"]), "No run 42",
         "workbench-cli runs"),
    Case("resume a run that does not exist", _db_case("", ["resume", "42", "--db", "{db}"]), "No run 42",
         "workbench-cli runs"),
    Case("resume a finished run", _finished_run, "is finished; only failed, cancelled or interrupted runs resume",
         "start its recipe again with 'workbench-cli run'"),
    Case("no database yet", lambda c: ["runs", "--db", str(c.folder / "none.sqlite")], "No results database",
         "run a recipe first"),
    # --- command lines ------------------------------------------------------------------------
    Case("no command", lambda c: [], "the following arguments are required: COMMAND", "usage: workbench-cli"),
    Case("unknown command", lambda c: ["frobnicate"], "invalid choice: 'frobnicate'", "choose from"),
    Case("run without a recipe", lambda c: ["run"], "the following arguments are required: recipe", "usage:"),
    Case("run id not a number", lambda c: ["show", "latest"], "invalid int value: 'latest'", "usage:"),
    Case("export without a format", lambda c: ["export"], "the following arguments are required: --format",
         "usage:"),
    Case("export to xml", lambda c: ["export", "--format", "xml"], "invalid choice: 'xml'",
         "choose from 'csv', 'markdown', 'latex', 'json'"),
    Case("evaluate without a task", lambda c: ["evaluate", str(c.tiny)], "required: --task", "usage:"),
    Case("evaluate an unknown task", lambda c: ["evaluate", str(c.tiny), "--task", "imdb"], "imdb", "sst2"),
    Case("runs with an unknown status", lambda c: ["runs", "--status", "done"], "invalid choice: 'done'",
         "choose from"),
    Case("export into a missing folder", _db_case("", ["export", "--format", "csv", "--db", "{db}", "-o",
                                                       "/nonexistent/dir/out.csv"]),
         "Cannot write /nonexistent/dir/out.csv", "No such file or directory"),
]


def _files(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_battery_has_enough_distinct_cases() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(process, "run_worker", lambda *a, **k: started.append(a))
    ctx = Ctx(tmp_path / "case", models, monkeypatch)
    ctx.folder.mkdir()
    argv = case.setup(ctx)
    capsys.readouterr()
    before = _files(ctx.folder, *models.values())
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == case.code, text[:2000]
    assert case.problem in text, text[:2000]
    assert case.fix in text, text[:2000]
    assert "Internal error" not in text and "Traceback" not in text
    assert all(len(line) < 2000 for line in text.splitlines()), max(len(line) for line in text.splitlines())
    assert started == []
    assert _files(ctx.folder, *models.values()) == before
