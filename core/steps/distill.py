"""Task-specific knowledge distillation into a smaller student (TinyBERT's two stages).

The teacher is the model entering the step (or a model the config names). The student is
(a) a subset of the teacher's layers, initialised DistilBERT-style by copying the embeddings,
the chosen layers and the head; (b) another local or hub model sharing the teacher's vocabulary;
or (c) a fresh configuration no wider than the teacher.

Stage 1, intermediate-layer distillation: MSE between the student's and the teacher's embedding
outputs, hidden states and attention maps under a layer mapping (uniform: student layer i <->
teacher layer i*N/M), through a learned linear projection when the hidden sizes differ. The
attention term compares the attention *probabilities* transformers returns (TinyBERT used the
pre-softmax scores); padded positions are masked out of every term. Stage 2, prediction-layer
distillation: soft cross-entropy at a temperature (MSE for regression) through
``core.steps.training.train``; ``alpha`` < 1 mixes in the hard task loss (0.5 = the SQuAD system's
distillation during fine-tuning).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.params import StepConfig, param
from core.pooling import POOLED_HEADS, install_pooling, pooling_of, set_pooling
from core.state import FLOAT, INITIAL_TRAITS, ModelState, StepContext
from core.steps.base import TRAINING_RESOURCES, Step, register

STEP_ID = "distill"


def parse_layers(text: str) -> list[int]:
    """ "2, 4,6" -> [2, 4, 6] (1-based, strictly increasing); ConfigError naming keep_layers otherwise."""
    text = text.strip()
    if not text:
        return []
    try:
        layers = [int(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        raise ConfigError(
            f"Keep teacher layers (keep_layers) must be comma-separated layer numbers like 2,4,6; got {text!r}",
            field="keep_layers",
        ) from None
    if any(k < 1 for k in layers) or layers != sorted(set(layers)):
        raise ConfigError(
            f"Keep teacher layers (keep_layers) must be increasing 1-based layer numbers; got {text!r}",
            field="keep_layers",
        )
    return layers


@dataclass(frozen=True)
class DistillConfig(StepConfig):
    student: str = param("teacher_layers", label="Student", help="teacher_layers: a subset of the teacher's layers; model: another model; fresh: a new configuration", choices=("teacher_layers", "model", "fresh"), sweepable=False)
    student_layers: int = param(3, label="Student layers", help="Layers of the student (teacher_layers picks them evenly spaced unless keep_layers says which)", min=1, max=96)
    keep_layers: str = param("", label="Keep teacher layers", help="1-based teacher layers to copy, e.g. 2,4,6; empty = evenly spaced", sweepable=False)
    student_model: str = param("", label="Student model", help="Local folder or hub id (student = model); must share the teacher's vocabulary", sweepable=False, model_ref=True)
    hidden_size: int = param(0, label="Hidden size", help="Fresh student width; 0 = the teacher's", min=0, max=8192)
    num_heads: int = param(0, label="Attention heads", help="Fresh student heads; 0 = the teacher's", min=0, max=128)
    ffn_size: int = param(0, label="FFN size", help="Fresh student feed-forward width; 0 = the teacher's", min=0, max=65536)
    teacher_model: str = param("", label="Teacher model", help="Empty = the model entering the step; else a local folder or hub id holding a task-trained model", sweepable=False, model_ref=True)
    layer_mapping: str = param("uniform", label="Layer mapping", help="uniform: student layer i learns from teacher layer i*N/M; kept_layers: from the layer it was copied from", choices=("uniform", "kept_layers"), sweepable=False)
    intermediate_epochs: float = param(3.0, label="Stage 1 epochs", help="Intermediate-layer distillation epochs; 0 skips stage 1", min=0.0, max=100.0)
    intermediate_lr: float = param(5e-5, label="Stage 1 learning rate", min=0.0, max=1.0, min_exclusive=True)
    embedding_loss: bool = param(True, label="Embedding loss", help="Stage 1: match the embedding layer output")
    hidden_loss: bool = param(True, label="Hidden-state loss", help="Stage 1: match mapped hidden states")
    attention_loss: bool = param(True, label="Attention loss", help="Stage 1: match mapped attention maps")
    prediction_epochs: float = param(3.0, label="Stage 2 epochs", help="Prediction-layer distillation epochs; 0 skips stage 2", min=0.0, max=100.0)
    lr: float = param(5e-5, label="Stage 2 learning rate", min=0.0, max=1.0, min_exclusive=True)
    temperature: float = param(1.0, label="Temperature", help="Softens both distributions in the soft cross-entropy", min=0.0, max=100.0, min_exclusive=True)
    alpha: float = param(1.0, label="Soft-loss weight", help="Stage 2 loss = alpha*soft + (1-alpha)*hard; 1 = pure prediction-layer distillation, 0.5 = distil during fine-tuning", min=0.0, max=1.0)
    batch_size: int = param(32, label="Batch size", min=1, max=1024)
    max_length: int = param(128, label="Max length", min=8, max=4096, unit="tokens")
    warmup_ratio: float = param(0.1, label="Warm-up", min=0.0, max=0.9)
    train_size: int | None = param(None, label="Training subset", help="Examples drawn (seeded) from the train split; empty = all", min=1)
    max_steps: int | None = param(None, label="Step budget per stage", help="Optimizer steps at most in each stage (its epochs cap it); empty = epochs only. An equal budget compares runs with and without augmented rows fairly", min=1)
    weight_decay: float = param(0.01, label="Weight decay", min=0.0, max=1.0)

    def validate(self) -> None:
        parse_layers(self.keep_layers)  # keep_layers, when given, decides the student's layer count
        if self.student == "model" and not self.student_model.strip():
            raise ConfigError("Student model (student_model) must name a folder or hub id when student = model", field="student_model")
        if self.hidden_size and self.num_heads and self.hidden_size % self.num_heads:
            raise ConfigError(
                f"Hidden size (hidden_size) {self.hidden_size} must be divisible by the attention heads ({self.num_heads})",
                field="hidden_size",
            )
        if self.intermediate_epochs == 0 and self.prediction_epochs == 0:
            raise ConfigError("Stage 1 epochs (intermediate_epochs) and stage 2 epochs (prediction_epochs) are both 0: nothing would be trained", field="prediction_epochs")
        if self.intermediate_epochs > 0 and not (self.embedding_loss or self.hidden_loss or self.attention_loss):
            raise ConfigError("Stage 1 needs at least one of embedding_loss, hidden_loss or attention_loss", field="hidden_loss")
        if self.layer_mapping == "kept_layers" and self.student != "teacher_layers":
            raise ConfigError("Layer mapping (layer_mapping) kept_layers needs student = teacher_layers", field="layer_mapping")


def _layer_list(model: Any) -> tuple[Any, str]:
    """(module owning the transformer block list, attribute name), found by structure (core.layers)."""
    from core.layers import layer_stack

    name, _ = layer_stack(model, step=STEP_ID)
    owner, _, attr = name.rpartition(".")
    return model.get_submodule(owner), attr


def _dims(config: Any) -> dict[str, int]:
    return {
        "layers": int(config.num_hidden_layers),
        "hidden": int(config.hidden_size),
        "heads": int(config.num_attention_heads),
        "ffn": int(getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", 0)),
    }


def uniform_mapping(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher hidden-state index (1-based layer) each student layer learns from: round(i*N/M)."""
    return [max(1, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]


@register
class Distill(Step):
    id = STEP_ID
    title = "Knowledge distillation"
    category = "Distillation"
    description = "TinyBERT two-stage task distillation into a layer subset, another model or a fresh small configuration."
    config_cls = DistillConfig
    requires = frozenset({FLOAT})
    resources = TRAINING_RESOURCES
    heads = frozenset({"classification", "regression", "qa"})
    keeps_depth = False  # the student may keep fewer of the teacher's layers

    @classmethod
    def vocabulary_problems(cls, config: dict[str, Any], incoming: Any, facts: Any) -> list[tuple[str, str]]:
        """A student model must read the teacher's token ids (teacher_model, else the entering model)."""
        from core.errors import brief
        from core.models import vocabulary_mismatch

        student_ref, teacher_ref = config.get("student_model", "").strip(), config.get("teacher_model", "").strip()
        if config.get("student") != "model" or not student_ref:
            return []
        teacher = facts(teacher_ref) if teacher_ref else incoming
        student = facts(student_ref)
        if teacher is None or student is None:
            return []
        who = f"the teacher {brief(teacher_ref)}" if teacher_ref else "the teacher (the model entering this step)"
        why = vocabulary_mismatch(who, teacher, f"the student {brief(student_ref)}", student)
        return [("student_model", why)] if why else []

    @classmethod
    def vocabulary_after(cls, config: dict[str, Any], incoming: Any, facts: Any) -> Any:
        if config.get("student") == "model" and config.get("student_model", "").strip():
            return facts(config["student_model"].strip())
        if config.get("teacher_model", "").strip():
            return facts(config["teacher_model"].strip())
        return incoming

    def training_work(self, train_rows: int, task_id: str = "") -> float | None:
        """Per optimizer step and row, a teacher forward and the student's forward and backward (3 of its
        forwards); a student about half the teacher's depth makes that about 2.5 teacher forwards. Rows an
        augmentation step added before this one are not known here."""
        import math

        from core.steps.training import step_budget

        cfg: DistillConfig = self.config  # type: ignore[assignment]
        batches = math.ceil(min(train_rows, cfg.train_size or train_rows) / cfg.batch_size)
        steps = sum(step_budget(epochs, batches, cfg.max_steps)
                    for epochs in (cfg.intermediate_epochs, cfg.prediction_epochs) if epochs > 0)
        return 2.5 * steps * cfg.batch_size

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        from core.steps.training import train

        cfg: DistillConfig = self.config  # type: ignore[assignment]
        ctx.check_cancelled()
        ctx.progress(0.0, "Preparing teacher and student")
        teacher = self._teacher(state, cfg)
        student, mapping, head_trained = self._student(teacher, cfg, ctx)
        student.data = dict(state.data)  # rows a step prepared (augmentation) train the student, and stay with it
        t_dims, s_dims = _dims(teacher.model.config), _dims(student.model.config)
        info: dict[str, Any] = {
            "student": cfg.student,
            "teacher_dims": t_dims,
            "student_dims": s_dims,
            "teacher_params": sum(p.numel() for p in teacher.model.parameters()),
            "student_params": sum(p.numel() for p in student.model.parameters()),
            "layer_mapping": mapping,
            "training_data": _data_summary(state),
        }
        if student.head in POOLED_HEADS:
            info["pooling"] = pooling_of(student.model.config)
        stage1 = cfg.intermediate_epochs > 0
        stage2 = cfg.prediction_epochs > 0
        split = 0.5 if stage1 and stage2 else (1.0 if stage1 else 0.0)
        if stage1:
            info["stage1"] = self._intermediate(
                student, teacher, mapping, cfg, ctx.scaled(0.0, split, "Stage 1 (intermediate layers): ")
            )
        if stage2:
            info["stage2"] = train(
                student,
                ctx.scaled(split, 1.0, "Stage 2 (prediction layer): "),
                epochs=cfg.prediction_epochs,
                lr=cfg.lr,
                batch_size=cfg.batch_size,
                max_length=cfg.max_length,
                warmup_ratio=cfg.warmup_ratio,
                train_size=cfg.train_size,
                weight_decay=cfg.weight_decay,
                teacher=teacher,
                distill_alpha=cfg.alpha,
                temperature=cfg.temperature,
                max_steps=cfg.max_steps,
            )
        student.model.eval()
        # stage 1 leaves the head as it was built; stage 2 trains it on the teacher's logits
        student.info = {**state.info, self.id: info, "head_trained": head_trained or stage2}
        ctx.log(
            f"distilled {info['teacher_params']:,} -> {info['student_params']:,} parameters "
            f"({s_dims['layers']} layers, width {s_dims['hidden']})"
        )
        ctx.progress(1.0, "Distilled")
        return student

    # --- teacher and student ------------------------------------------------------------
    def _teacher(self, state: ModelState, cfg: DistillConfig) -> ModelState:
        if not cfg.teacher_model.strip():
            return state
        from core.models import ModelRef, load_task_model, load_tokenizer

        ref = ModelRef.parse(cfg.teacher_model)
        model, head_trained = load_task_model(ref, state.head, num_labels=state.model.config.num_labels)
        return ModelState(model=model.eval(), tokenizer=load_tokenizer(ref), task=state.task, head=state.head,
                          info={"head_trained": head_trained})

    def _student(self, teacher: ModelState, cfg: DistillConfig, ctx: StepContext) -> tuple[ModelState, list[int], bool]:
        """(student, layer mapping, whether the student's head has been trained already)."""
        import torch

        from core.models import ModelRef, load_task_model, load_tokenizer, model_class_for

        t_dims = _dims(teacher.model.config)
        tokenizer = teacher.tokenizer
        keep: list[int] = []
        if cfg.student == "teacher_layers":
            keep = parse_layers(cfg.keep_layers)
            if keep and keep[-1] > t_dims["layers"]:
                raise ConfigError(
                    f"Keep teacher layers (keep_layers) {cfg.keep_layers} asks for layers the "
                    f"{t_dims['layers']}-layer teacher does not have",
                    step=self.id,
                    field="keep_layers",
                )
            if not keep and cfg.student_layers > t_dims["layers"]:
                raise ConfigError(
                    f"Student layers (student_layers) = {cfg.student_layers} is more than the teacher's "
                    f"{t_dims['layers']} layers",
                    step=self.id,
                    field="student_layers",
                )
            keep = keep or uniform_mapping(cfg.student_layers, t_dims["layers"])
            model = copy.deepcopy(teacher.model)
            owner, attr = _layer_list(model)
            layers = getattr(owner, attr)
            setattr(owner, attr, torch.nn.ModuleList([layers[k - 1] for k in keep]))
            model.config.num_hidden_layers = len(keep)
            head_trained = bool(teacher.info.get("head_trained"))  # the teacher's head, copied
        elif cfg.student == "model":
            ref = ModelRef.parse(cfg.student_model)
            model, head_trained = load_task_model(ref, teacher.head, num_labels=teacher.model.config.num_labels)
            if not head_trained and teacher.head in POOLED_HEADS:
                # a new head learns from the teacher's logits, so it reads the sentence as the teacher's does
                set_pooling(model, pooling_of(teacher.model.config))
            elif head_trained and pooling_of(model.config) != pooling_of(teacher.model.config):
                ctx.log(f"the student's trained head keeps its pooling ({pooling_of(model.config)}); "
                        f"the teacher's is {pooling_of(teacher.model.config)}")
            tokenizer = load_tokenizer(ref)
            if tokenizer.get_vocab() != teacher.tokenizer.get_vocab():
                raise ConfigError(
                    f"Student model (student_model) '{cfg.student_model}' uses a different vocabulary from the "
                    "teacher; distillation feeds both the same token ids",
                    step=self.id,
                    field="student_model",
                )
        else:
            model = self._fresh(teacher, cfg, ctx, model_class_for)
            head_trained = False
        s_dims = _dims(model.config)
        for key, field in (("layers", "student_layers"), ("hidden", "hidden_size"), ("heads", "num_heads"), ("ffn", "ffn_size")):
            if s_dims[key] > t_dims[key]:
                raise ConfigError(
                    f"The student is wider than the teacher: {field} = {s_dims[key]} > the teacher's {t_dims[key]}",
                    step=self.id,
                    field=field,
                )
        if cfg.layer_mapping == "kept_layers":
            mapping = keep
        else:
            mapping = uniform_mapping(s_dims["layers"], t_dims["layers"])
        model.eval()
        student = ModelState(
            model=model,
            tokenizer=tokenizer,
            task=teacher.task,
            head=teacher.head,
            transforms=[],
            traits=INITIAL_TRAITS,
        )
        return student, mapping, head_trained

    def _fresh(self, teacher: ModelState, cfg: DistillConfig, ctx: StepContext, model_class_for: Any) -> Any:
        import torch

        t = _dims(teacher.model.config)
        config = copy.deepcopy(teacher.model.config)
        want = {
            "student_layers": cfg.student_layers,
            "hidden_size": cfg.hidden_size or t["hidden"],
            "num_heads": cfg.num_heads or t["heads"],
            "ffn_size": cfg.ffn_size or t["ffn"],
        }
        for key, field in (("layers", "student_layers"), ("hidden", "hidden_size"), ("heads", "num_heads"), ("ffn", "ffn_size")):
            if want[field] > t[key]:
                raise ConfigError(
                    f"The student is wider than the teacher: {field} = {want[field]} > the teacher's {t[key]}",
                    step=self.id,
                    field=field,
                )
        if want["hidden_size"] % want["num_heads"]:
            raise ConfigError(
                f"Hidden size (hidden_size) {want['hidden_size']} must be divisible by the attention heads "
                f"({want['num_heads']})",
                step=self.id,
                field="hidden_size",
            )
        config.num_hidden_layers = want["student_layers"]
        config.hidden_size = want["hidden_size"]
        config.num_attention_heads = want["num_heads"]
        if hasattr(config, "intermediate_size"):
            config.intermediate_size = want["ffn_size"]
        else:
            config.hidden_dim = want["ffn_size"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            return install_pooling(model_class_for(teacher.head).from_config(config), teacher.head)  # the teacher's pooling

    # --- stage 1 ------------------------------------------------------------------------
    def _intermediate(
        self, student: ModelState, teacher: ModelState, mapping: list[int], cfg: DistillConfig, ctx: StepContext
    ) -> dict[str, Any]:
        import torch

        from core.steps.training import MODEL_INPUTS, run_loop, train_loader

        s_hidden = student.model.config.hidden_size
        t_hidden = teacher.model.config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            projection = torch.nn.Linear(s_hidden, t_hidden) if s_hidden != t_hidden else torch.nn.Identity()
        loader = train_loader(student, ctx, batch_size=cfg.batch_size, max_length=cfg.max_length, train_size=cfg.train_size)
        s_base, t_base = student.model.base_model, teacher.model.base_model
        need_att = cfg.attention_loss
        previous = (student.model.config._attn_implementation, teacher.model.config._attn_implementation)
        parts = {"embedding": 0.0, "hidden": 0.0, "attention": 0.0}

        def loss_fn(batch: dict[str, Any]) -> Any:
            inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
            mask = inputs["attention_mask"].to(torch.float32)
            s_out = s_base(**inputs, output_hidden_states=True, output_attentions=need_att)
            with torch.no_grad():
                t_out = t_base(**inputs, output_hidden_states=True, output_attentions=need_att)
            total = mask.new_zeros(())
            if cfg.embedding_loss:
                term = masked_mse(projection(s_out.hidden_states[0]), t_out.hidden_states[0], mask)
                parts["embedding"] = float(term.detach())
                total = total + term
            if cfg.hidden_loss:
                term = sum(
                    masked_mse(projection(s_out.hidden_states[i + 1]), t_out.hidden_states[t], mask)
                    for i, t in enumerate(mapping)
                )
                parts["hidden"] = float(term.detach())
                total = total + term
            if need_att:
                term = sum(
                    attention_mse(s_out.attentions[i], t_out.attentions[t - 1], mask) for i, t in enumerate(mapping)
                )
                parts["attention"] = float(term.detach())
                total = total + term
            return total

        try:
            if need_att:
                student.model.set_attn_implementation("eager")
                teacher.model.set_attn_implementation("eager")
            stats = run_loop(
                ctx,
                parameters=list(student.model.named_parameters()) + list(projection.named_parameters()),
                modules=[student.model, projection],
                loader=loader,
                loss_fn=loss_fn,
                epochs=cfg.intermediate_epochs,
                lr=cfg.intermediate_lr,
                warmup_ratio=cfg.warmup_ratio,
                weight_decay=cfg.weight_decay,
                label="Training",
                max_steps=cfg.max_steps,
            )
        finally:
            if need_att:
                student.model.set_attn_implementation(previous[0])
                teacher.model.set_attn_implementation(previous[1])
        stats["final_terms"] = dict(parts)
        stats["training_data"] = getattr(loader, "training_data", None)
        stats["projection"] = s_hidden != t_hidden
        return stats


def _data_summary(state: ModelState) -> dict[str, Any]:
    """Which rows distillation trains on: the task's split, or the rows an earlier step prepared
    (with that step's own report, e.g. augment.tinybert's counts and sources)."""
    rows = state.data.get("train")
    if not rows:
        return {"from": "task", "augmented": False}
    augmented = sum(1 for r in rows if r.get("augmented"))
    made_by = {k: v for k, v in state.info.items() if k.startswith("augment.") and isinstance(v, dict)}
    return {"from": "prepared rows", "augmented": augmented > 0, "rows": len(rows), "augmented_rows": augmented,
            "sentences": len(rows) - augmented, "prepared_by": sorted(made_by)}


def masked_mse(student: Any, teacher: Any, mask: Any) -> Any:
    """Mean squared error over the real (non-padding) token positions of [B, L, D] tensors."""
    weights = mask.unsqueeze(-1)
    diff = (student - teacher).pow(2) * weights
    return diff.sum() / (weights.sum() * student.shape[-1]).clamp_min(1.0)


def attention_mse(student: Any, teacher: Any, mask: Any) -> Any:
    """MSE between [B, H, L, L] attention maps over real query/key pairs; heads averaged if counts differ."""
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(dim=1, keepdim=True)
        teacher = teacher.mean(dim=1, keepdim=True)
    pair = (mask[:, None, :, None] * mask[:, None, None, :]).expand_as(student)
    diff = (student - teacher).pow(2) * pair
    return diff.sum() / pair.sum().clamp_min(1.0)

