"""The two published-system benchmarks run their recipes through the engine (core.run.runner) into
one results database and build their tables from it; a shared prefix is trained once.

Each study runs for real on a tiny BERT with a sliver of data (seconds, not hours): the recipes,
the runner, the cache, the store and the renderer are the ones a full benchmark run uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import bench_squad, bench_tinybert, report
from benchmarks.study import Study, StudyError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny") / "bert6", layers=6, hidden=32)


def tinybert_args(model: Path, **changes: object) -> argparse.Namespace:
    args = dict(model=str(model), train_size=16, teacher_epochs=1.0, teacher_lr=1e-3, stage1_epochs=0.5,
                stage2_epochs=0.5, distill_lr=1e-3, prune_amounts=[0.1, 0.4], eval_limit=16, threads=1,
                latency_repeats=2, torchao=False, full_range=True, seed=0, reduced=True, distill_steps=None, augment=0,
                max_length=128, teacher_config={}, teacher_ready=False)
    return argparse.Namespace(**(args | changes))


def test_the_teachers_other_finetune_fields_reach_its_recipe(tiny6: Path) -> None:
    """--teacher-config sets any finetune field of the teacher (R-Drop's weight here), besides epochs and lr."""
    args = tinybert_args(tiny6, teacher_config=bench_tinybert.parse_config(["consistency=1.0", "first_on_task=none"]))
    teachers = [step["config"] for r in bench_tinybert.recipes(args, "rte").values() for step in r["chain"]
                if step["step"] == "finetune"]
    assert teachers and all(c["consistency"] == 1.0 and c["first_on_task"] == "none" and c["epochs"] == 1.0
                            for c in teachers)
    for bad in (["consistency"], ["epochs=6"]):  # not FIELD=VALUE; a field with its own option
        with pytest.raises(SystemExit):
            bench_tinybert.main(["--teacher-config", *bad])


def test_a_ready_teacher_is_the_model_as_loaded_and_the_report_says_so(tiny6: Path, tmp_path: Path) -> None:
    """--teacher-ready (RTE's soup): no finetune step; the teacher row is the loaded model, which every recipe
    reuses, and the settings name the soup the report describes."""
    args = tinybert_args(tiny6, teacher_ready=True, teacher_epochs=None, teacher_lr=None, full_range=False,
                         prune_amounts=[0.2], augment=2, distill_steps=1)
    made = bench_tinybert.recipes(args, "sst2")
    assert all(step["step"] != "finetune" for r in made.values() for step in r["chain"])
    study = Study(tmp_path / "ready.sqlite")
    task = bench_tinybert.run_task(study, args, "sst2")
    teacher = next(row for row in task["rows"] if row["variant"] == bench_tinybert.TEACHER)
    assert teacher["step_id"] == "baseline"
    assert task["teacher_and_students"]["teacher"]["value"] == teacher["metric"]
    assert task["prefix_cache"]["int8"]["teacher_and_student_reused"] is True
    assert task["prefix_cache"]["augmented"]["teacher_reused"] is True
    assert [(r.step_id, r.cached) for r in study.runs[-1].rows] == [
        ("baseline", True), ("augment.tinybert", False), ("distill", False)]
    settings = bench_tinybert.settings(args, ["sst2"])
    assert settings["teacher"] == {"ready": str(tiny6), "soup": None}
    assert task["training"]["teacher_ready"] == {"ready": str(tiny6), "task": None, "head_trained": False, "soup": None}
    md = report.section_markdown("tinybert", {"benchmark": "tinybert", "settings": settings, "environment": {},
                                              "tasks": [task], "seconds": 1})
    assert f"teacher given ready-made, no fine-tune in the study: the model folder {tiny6}" in md
    assert f"| sst2 | given ready-made ({tiny6}) |" in md  # its training is not recorded, and not judged
    # a soup's folder (probe_rte_soup.py) carries its members' and their start's training records
    trend = {"verdict": "plateau", "from_value": 0.5, "to_value": 0.51, "from_step": 100, "to_step": 200,
             "change": 0.01, "change_low": -0.02, "change_high": 0.04}
    record = {"steps": 200, "seconds": 60.0, "cpu_seconds": 120.0, "convergence": trend}
    soup = tmp_path / "soup"
    soup.mkdir()
    (soup / "manifest.json").write_text(json.dumps({"format": 1, "task": "sst2", "info": {"head_trained": True, "soup": {
        "method": "uniform", "members": ["a", "b"], "member_training": [record, None],
        "start": {"path": "q", "task": "qnli", "training": {**record, "convergence": {**trend, "verdict": "improving"}}}}}}))
    settings["teacher"] = bench_tinybert.ready_summary(str(soup))
    assert settings["teacher"]["soup"] == {"method": "uniform", "members": ["a", "b"]}

    def rendered() -> str:
        task["training"]["teacher_ready"] = bench_tinybert.ready_teacher(str(soup))
        return report.section_markdown("tinybert", {"benchmark": "tinybert", "settings": settings, "environment": {},
                                                    "tasks": [task], "seconds": 1})

    md = rendered()  # a member's record missing: said, and not judged on the others
    assert "teacher given ready-made, no fine-tune in the study: a uniform model soup of 2 fine-tunes" in md
    assert "| sst2 | a uniform soup of 2 | — | — | 1 of 2 members' training recorded | not judged |" in md
    assert "teacher no longer gaining beyond noise" not in md
    manifest = json.loads((soup / "manifest.json").read_text())
    manifest["info"]["soup"]["member_training"] = [record, record]
    (soup / "manifest.json").write_text(json.dumps(manifest))
    md = rendered()
    row = next(line for line in md.splitlines() if line.startswith("| sst2 | 2 x 200, a uniform soup"))
    assert "all after 200 on qnli" in row and "| 3.0 / 6.0 (summed over its runs) |" in row  # start + 2 members
    assert "first on qnli: **yes**, still improving; member 0: no gain beyond noise" in row
    assert "teacher no longer gaining beyond noise" in md and "**not met** (still improving)" in md


def test_a_ready_teacher_is_refused_unless_it_is_one_trained_model_for_one_task(tiny6: Path, tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    out = ["--out", str(tmp_path / "never")]  # a broken refusal must not overwrite the committed results
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "manifest.json").write_text(json.dumps({"task": "sst2", "info": {"head_trained": True}}))
    for argv, message in (
            (["--teacher-lr", "1e-4", "--tasks", "rte"], "trains no teacher"),
            (["--teacher-config", "consistency=1", "--tasks", "rte"], "trains no teacher"),
            (["--tasks", "rte,sst2", "--model", str(tiny6)], "exactly one in --tasks"),
            (["--tasks", "rte", "--model", str(tiny6)], "whose task head was trained"),
            (["--tasks", "rte", "--model", str(trained)], "fine-tuned for sst2, not rte")):
        with pytest.raises(SystemExit):
            bench_tinybert.main(["--teacher-ready", *argv, *out])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob("never*"))


def test_tinybert_rows_length_reaches_evaluation_and_distillation(tiny6: Path) -> None:
    """The study measured and distilled RTE at 128 tokens while its teacher trained at about 200: 33 of RTE's
    277 dev pairs were cut. --max-length sets both, and every recipe of a task shares it (one cache prefix)."""
    made = bench_tinybert.recipes(tinybert_args(tiny6, max_length=256, augment=2), "rte")
    assert {r["measure"]["max_length"] for r in made.values()} == {256}
    distills = [step["config"] for r in made.values() for step in r["chain"] if step["step"] == "distill"]
    assert distills and {c["max_length"] for c in distills} == {256}


def test_tinybert_study_trains_teacher_and_student_once(tiny6: Path, tmp_path: Path) -> None:
    study = Study(tmp_path / "tinybert.sqlite")
    task = bench_tinybert.run_task(study, tinybert_args(tiny6), "sst2")
    keys = [run.key for run in study.runs]
    assert keys == ["sst2 prune", "sst2 int8", "sst2 int8-full"]
    # the first recipe computes everything; the later ones reuse baseline, teacher and student
    first, *later = study.runs
    assert not any(r.cached for r in first.rows)
    for run in later:
        assert [r.cached for r in run.rows] == [True, True, True, False], run.key
    assert all(use["teacher_and_student_reused"] for use in task["prefix_cache"].values())
    # the table rows are the stored variants, read back from the database
    from core.store import open_store, result_rows

    with open_store(study.db) as store:
        stored = {r.variant: r for r in result_rows(store)}
    names = [row["variant"] for row in task["rows"]]
    assert names == ["teacher (MiniLM-L6)", "student (3 layers)", "student pruned 10%", "student pruned 40%",
                     "student int8", "student int8 (8-bit activations)"]
    for row in task["rows"]:
        mine = stored[row["variant_id"]]
        assert (row["metric"], row["artifact_mb"], row["latency_p50_ms"]) == \
            (mine.metric, mine.size_mb, mine.latency_p50_ms)
    pruned = {row["variant"]: row for row in task["rows"]}
    assert pruned["student pruned 40%"]["sparsity"] == pytest.approx(0.4, abs=0.01)
    assert pruned["student pruned 40%"]["nonzero_params"] < pruned["student pruned 10%"]["nonzero_params"]
    assert pruned["student int8"]["artifact_mb"] < pruned["student (3 layers)"]["artifact_mb"]
    # ratios follow from the rows
    student, int8 = pruned["student (3 layers)"], pruned["student int8"]
    assert task["ratios"]["int8_vs_fp32_artifact_ratio"] == pytest.approx(int8["artifact_mb"] / student["artifact_mb"])


def test_tinybert_augmented_student_reuses_the_teacher_and_is_compared_paired(tiny6: Path, tmp_path: Path) -> None:
    study = Study(tmp_path / "tinybert.sqlite")
    task = bench_tinybert.run_task(study, tinybert_args(tiny6, full_range=False, prune_amounts=[0.2], augment=2,
                                                        distill_steps=1, stage1_epochs=5.0, stage2_epochs=5.0), "sst2")
    assert [run.key for run in study.runs] == ["sst2 prune", "sst2 int8", "sst2 augmented"]
    augmented_run = study.runs[-1]
    # baseline and teacher come from the cache; augmentation and the student trained on its rows are new
    assert [(r.step_id, r.cached) for r in augmented_run.rows] == [
        ("baseline", True), ("finetune", True), ("augment.tinybert", False), ("distill", False)]
    assert task["prefix_cache"]["augmented"]["teacher_reused"] is True
    names = [row["variant"] for row in task["rows"]]
    assert names[-1] == bench_tinybert.AUGMENTED
    # the step budget binds both students equally (the epochs would allow more)
    plain, augmented = task["training"]["distill"], task["training"]["distill_augmented"]
    assert plain["stage1"]["steps"] == augmented["stage1"]["steps"] == 1
    assert plain["stage2"]["steps"] == augmented["stage2"]["steps"] == 1
    assert augmented["training_data"]["augmented"] is True and plain["training_data"]["augmented"] is False
    assert task["training"]["augment"]["rows"] > 16
    # the comparisons are paired on the stored dev predictions and agree with the stored metrics
    c = task["teacher_and_students"]
    by_name = {row["variant"]: row for row in task["rows"]}
    assert c["teacher"]["value"] == by_name[bench_tinybert.TEACHER]["metric"]
    assert c["augmented_vs_student"]["value"] == pytest.approx(
        by_name[bench_tinybert.AUGMENTED]["metric"] - by_name[bench_tinybert.STUDENT]["metric"])
    assert c["augmented_vs_student"]["low"] <= c["augmented_vs_student"]["value"] <= c["augmented_vs_student"]["high"]
    assert c["teacher_vs_trivial"]["majority"]["low"] <= c["teacher_vs_trivial"]["majority"]["value"]
    md = report.section_markdown("tinybert", {"benchmark": "tinybert", "settings": bench_tinybert.settings(
        tinybert_args(tiny6, augment=2, distill_steps=1), ["sst2"]), "environment": {}, "tasks": [task], "seconds": 1})
    assert "### Teachers and students" in md and "student, augmented" in md


def test_tinybert_script_writes_json_markdown_and_database(tiny6: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "tinybert"
    code = bench_tinybert.main(["--model", str(tiny6), "--tasks", "sst2", "--train-size", "16", "--teacher-epochs", "1",
                                "--stage1-epochs", "0.5", "--stage2-epochs", "0.5", "--eval-limit", "16",
                                "--latency-repeats", "2", "--threads", "1", "--prune-amounts", "0.2", "--reduced",
                                "--augment", "0", "--out", str(out)])
    assert code == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert Path(data["study"]["database"]) == out.with_suffix(".sqlite").resolve()
    assert [r["key"] for r in data["study"]["recipes"]] == ["sst2 prune", "sst2 int8"]
    md = out.with_suffix(".md").read_text()
    assert md == report.section_markdown("tinybert", data)
    assert "timed by the engine" in md and "2 timed forward passes" in md  # how latency was measured
    assert "| TinyBERT sst2 | recipe 'int8' reuses the teacher and student (prefix cache) |" in md
    assert "the first recipe's first 2 step(s), then quantize.dynamic_int8" in md
    # a second run without --reuse starts afresh: nothing is reused from the first
    bench_tinybert.main(["--model", str(tiny6), "--tasks", "sst2", "--train-size", "16", "--teacher-epochs", "1",
                         "--stage1-epochs", "0.5", "--stage2-epochs", "0.5", "--eval-limit", "16",
                         "--latency-repeats", "2", "--threads", "1", "--prune-amounts", "0.2", "--augment", "0",
                         "--out", str(out)])
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["study"]["recipes"][0]["cached"] == [] and again["study"]["recipes"][0]["run_id"] == 1


def test_squad_tables_share_the_fine_tuned_start(tmp_path: Path) -> None:
    from tests.helpers import tiny_bert_folder

    model = tiny_bert_folder(tmp_path / "bert4", layers=4, hidden=32)
    settings = bench_squad.Settings(model=str(model), threads=1, squad_train=16, squad_eval=8, squad_max_length=64,
                                    share_train=8, sketch_train=8, sketch_attention=16,
                                    sketch_ffn_out=16, sketch_init=("product", "least_squares"), sketch_calibration=8,
                                    latency_repeats=2, bits=(16, 4), vocab=(100, 50), layers=(3, 2))
    bench = bench_squad.Bench(settings, Study(tmp_path / "squad.sqlite"))
    bench.run("squad_v2", ("vocab", "bits", "sketch", "layers"))
    assert [run.key for run in bench.study.runs] == ["squad_v2 vocab", "squad_v2 bits", "squad_v2 sketch",
                                                     "squad_v2 sketch least_squares", "squad_v2 layers"]
    assert set(bench.prefix_cache) == {"squad_v2 bits", "squad_v2 sketch", "squad_v2 sketch least_squares",
                                       "squad_v2 layers"}
    assert all(use["start_reused"] for use in bench.prefix_cache.values())
    by = {(r["table"], r["variant"]): r for r in bench.rows}
    assert set(by) == {("start", "fine-tuned fp32"), ("vocab", "100%"), ("vocab", "50%"), ("bits", "16 bits"),
                       ("bits", "4 bits"), ("sketch", "sketched, no fine-tuning"), ("sketch", "sketched, fine-tuned"),
                       ("sketch", "sketched (least-squares init), no fine-tuning"),
                       ("sketch", "sketched (least-squares init), fine-tuned"),
                       ("layers", "6 layers"), ("layers", "3 layers"), ("layers", "2 layers")}
    start = by[("start", "fine-tuned fp32")]
    assert not start["cached"] and "f1" in start and "HasAns_f1" in start
    four = by[("bits", "4 bits")]
    assert four["smaller_pct"] == pytest.approx(100 * (1 - four["artifact_mb"] / start["artifact_mb"]))
    assert four["packed_bytes"] < by[("bits", "16 bits")]["packed_bytes"]
    assert by[("vocab", "50%")]["vocab_size"] > 0
    assert by[("layers", "2 layers")]["params"] < by[("layers", "3 layers")]["params"] < start["params"]
    md = report.section_markdown("squad", {"settings": {}, "squad_train_questions": 16, "rows": bench.rows,
                                           "study": bench.study.summary(), "prefix_cache": bench.prefix_cache})
    assert "### Table 4 — linear n-bit quantization" in md and "| squad_v2 | 4 bits |" in md
    assert "| SQuAD-system squad_v2 | recipe 'squad_v2 layers' reuses the fine-tuned start (prefix cache) |" in md


def test_a_recipe_that_fails_stops_the_study_with_its_error(tmp_path: Path) -> None:
    study = Study(tmp_path / "x.sqlite")
    recipe = {"name": "broken", "model": str(tmp_path / "no-such-model"), "task": "sst2", "chain": []}
    with pytest.raises(Exception, match="no-such-model"):
        study.run("broken", recipe)
    assert issubclass(StudyError, RuntimeError)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_the_suites_squad_benches_can_reuse_one_fine_tuned_start(mode: str) -> None:
    """squad-share and squad-sketch run with --reuse on squad's database: their start and measure
    settings must equal squad's, or the cache key differs and the start trains again."""
    from benchmarks import suite

    def settings(key: str) -> bench_squad.Settings:
        flags = suite.BY_KEY[key].quick if mode == "quick" else suite.BY_KEY[key].full
        return bench_squad.override(bench_squad.Settings(), list(flags[flags.index("--set") + 1 :]))

    first = settings("squad")
    for key in ("squad-share", "squad-sketch", "squad-sketch-ls"):
        flags = suite.BY_KEY[key].quick if mode == "quick" else suite.BY_KEY[key].full
        assert "--reuse" in flags and "--db" not in flags  # the default database: OUT/squad.sqlite
        later = settings(key)
        assert bench_squad.start_step(later, "squad_v2") == bench_squad.start_step(first, "squad_v2"), key
        assert bench_squad.measure(later, "squad_v2") == bench_squad.measure(first, "squad_v2"), key
    assert "--reuse" not in (suite.BY_KEY["squad"].quick if mode == "quick" else suite.BY_KEY["squad"].full)


def test_a_bad_squad_setting_is_named() -> None:
    with pytest.raises(ValueError, match="no setting 'squad_trian'"):
        bench_squad.override(bench_squad.Settings(), ["squad_trian=5"])
    with pytest.raises(ValueError, match="'many' is not a int value"):
        bench_squad.override(bench_squad.Settings(), ["squad_train=many"])
    assert bench_squad.override(bench_squad.Settings(), ["bits=8,4"]).bits == (8, 4)


def test_bench_finetune_reports_what_the_tuned_threshold_bought_and_rescore_gives_it_back(
        tiny6: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CoLA (MCC) on the tiny model: the run records the tuned threshold, its argmax counterpart rebuilt from the
    stored confidences scores what scikit-learn gives for the shifted margins, and --rescore recomputes the
    same fields from the database alone."""
    import numpy as np
    from sklearn.metrics import matthews_corrcoef

    from benchmarks import bench_finetune
    from core.store import open_store, variant_predictions
    from core.tasks import get_task

    shipped = bench_finetune.measure
    monkeypatch.setattr(bench_finetune, "measure", lambda a: {**shipped(a), "max_length": 64})  # the tiny model's 128
    args = argparse.Namespace(model=str(tiny6), config={"train_size": 200, "max_steps": 6, "lr": 1e-3}, threads=1,
                              seed=0, seeds=[0], tasks=["cola"])
    out = tmp_path / "ft"
    study = Study(out.with_suffix(".sqlite"))
    run = bench_finetune.run_task(study, args, "cola", None, 0)
    tuned = run["decision_threshold"]
    assert tuned is not None and tuned["held_out_after"] >= tuned["held_out_before"]
    with open_store(study.db) as store:
        stored = variant_predictions(store, run["variant_id"])
    dev = get_task("cola").load("dev")
    references = [dev[int(i)]["label"] for i in stored["indices"]]
    predicted = np.asarray(stored["predictions"])
    p1 = np.where(predicted == 1, stored["confidences"], 1 - np.asarray(stored["confidences"]))
    argmax = (np.log(p1 / (1 - p1)) + tuned["margin"] > 0).astype(int)
    assert tuned["dev_argmax"] == pytest.approx(matthews_corrcoef(references, argmax), abs=1e-6)
    assert tuned["dev_change"]["value"] == pytest.approx(run["metric"] - tuned["dev_argmax"], abs=1e-9)
    assert tuned["dev_change"]["low"] <= tuned["dev_change"]["value"] <= tuned["dev_change"]["high"]

    result = {"benchmark": "finetune", "settings": bench_finetune.settings(args, ["cola"]), "tasks": [run]}
    out.with_suffix(".json").write_text(json.dumps({**result, "tasks": [{**run, "decision_threshold": None}]}),
                                        encoding="utf-8")
    rescored = bench_finetune.rescore(out)
    assert rescored["tasks"][0]["decision_threshold"] == tuned  # the same function on the same stored rows
    assert "| cola (0) |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_merging_keeps_only_tasks_this_config_would_run_the_same_way() -> None:
    """A file written before ``first_on_task`` existed ran every task without one; under ``auto`` only RTE
    changes (QNLI first), so redoing RTE may keep SST-2 and CoLA, but keeping RTE is refused."""
    from benchmarks.bench_finetune import merge_problem
    from core.steps.finetune import FinetuneConfig

    new = FinetuneConfig().to_dict()
    old = {k: v for k, v in new.items() if k != "first_on_task"}
    assert merge_problem(old, new, ["sst2", "cola", "stsb", "pairs"]) is None
    assert merge_problem(old, new, ["sst2", "rte"]) == "its rte ran with another finetune config; redo them too"
    assert merge_problem(old, {**new, "lr": 2e-5}, ["sst2"]) is not None  # another rate: not the same run
    assert merge_problem({**new, "first_on_task": "qnli"}, new, ["rte"]) is None  # auto is QNLI for RTE
