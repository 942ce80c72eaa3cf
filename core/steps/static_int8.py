"""Static int8 post-training quantization for a deployment backend (OpenVINO or ONNX Runtime).

Weights and activations both int8, the activation ranges calibrated on a seeded subset of the
task's train split. ``backend: openvino`` runs NNCF post-training quantization (transformer
mode); ``backend: onnxruntime`` runs ONNX Runtime's static quantizer (QDQ). The engine is
:mod:`core.backends.quantize`; this module only declares the step.

The variant's artifact is the deployable file, a backend artifact folder (model.xml/.bin or
model.onnx + tokenizer + config + manifest); its size is that folder's bytes and its metric and
latency are measured by running that backend. The model flowing on is a session adapter, not a
torch module, so no step can follow this one (it removes the float trait every step requires).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from core.params import StepConfig, param
from core.state import DEPLOYED, FLOAT, TRAINABLE, ModelState, StepContext
from core.steps.base import Step, register

INT8 = "int8"  # the same trait quantize.dynamic_int8 adds
STEP_ID = "quantize.static_int8"

_PACKAGES = {"openvino": ("openvino", "nncf"), "onnxruntime": ("onnxruntime", "onnx")}
_OPENVINO_ONLY = {"preset": "mixed", "fast_bias_correction": True, "smooth_quant": True}
_ONNXRUNTIME_ONLY = {"per_channel": True, "activation_type": "uint8"}


@dataclass(frozen=True)
class StaticInt8Config(StepConfig):
    backend: str = param(
        "openvino",
        label="Backend",
        help="openvino: NNCF post-training quantization, saved as OpenVINO IR. onnxruntime: ONNX Runtime's static "
        "quantizer (QDQ), saved as ONNX. Needs the optional deploy packages: pip install -e \".[deploy]\"",
        choices=("openvino", "onnxruntime"),
        sweepable=False,
    )
    calibration_size: int = param(
        300,
        label="Calibration examples",
        help="Examples drawn (seeded) from the task's train split to calibrate the activation ranges",
        min=1,
        max=100_000,
        unit="examples",
    )
    max_length: int = param(128, label="Max length", help="Calibration rows are truncated to this many tokens",
                            min=8, max=4096, unit="tokens", sweepable=False)
    embeddings_int8: bool = param(
        True,
        label="Embeddings in int8",
        help="Also store the embedding tables in int8 (OpenVINO: NNCF's int8 embedding weights; ONNX Runtime: "
        "a quantized Gather, one scale per table). Off keeps them float: a larger file",
        sweepable=False,
    )
    preset: str = param(
        "mixed",
        label="Preset (openvino)",
        help="mixed: symmetric weights, asymmetric activations (NNCF's choice for transformers); performance: both "
        "symmetric",
        choices=("mixed", "performance"),
        sweepable=False,
    )
    fast_bias_correction: bool = param(
        True, label="Fast bias correction (openvino)",
        help="NNCF's fast bias correction; off uses the slower, usually more accurate method", sweepable=False,
    )  # fmt: skip
    smooth_quant: bool = param(
        True, label="SmoothQuant (openvino)",
        help="Move activation outliers into the weights before quantizing (NNCF's default for transformers)",
        sweepable=False,
    )  # fmt: skip
    per_channel: bool = param(True, label="Per-channel weights (onnxruntime)",
                              help="One scale per output channel instead of one per tensor", sweepable=False)
    activation_type: str = param(
        "uint8", label="Activation type (onnxruntime)",
        help="uint8 (U8S8, the fast x86 path) or int8 activations", choices=("uint8", "int8"), sweepable=False,
    )  # fmt: skip

    def validate(self) -> None:
        other = _ONNXRUNTIME_ONLY if self.backend == "openvino" else _OPENVINO_ONLY
        for name, default in other.items():
            if getattr(self, name) != default:
                raise ConfigError(f"{name} applies to the {'onnxruntime' if self.backend == 'openvino' else 'openvino'} "
                                  f"backend only; leave it {default!r} or switch the backend", step=STEP_ID, field=name)


def missing_packages(backend: str) -> list[str]:
    """The deploy packages ``backend`` needs that are not installed, for a chain check before a run.

    Not part of ``validate``: a default config must build without them (the palette makes one).
    """
    from core.backends.packages import missing_packages as missing

    return missing(_PACKAGES.get(backend, ()))


@register
class StaticInt8(Step):
    id = STEP_ID
    title = "Static int8 for a deployment backend"
    category = "Quantization"
    description = ("int8 weights and calibrated int8 activations on OpenVINO (NNCF) or ONNX Runtime; the variant is "
                   "the deployable model file, measured on that backend.")
    config_cls = StaticInt8Config
    requires = frozenset({FLOAT})
    removes = frozenset({FLOAT, TRAINABLE})
    adds = frozenset({INT8, DEPLOYED})

    @classmethod
    def missing_packages(cls, config: dict[str, object]) -> list[str]:
        return missing_packages(str(config.get("backend", "openvino")))

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import tempfile
        from pathlib import Path

        from core.backends.artifact import load_backend_artifact
        from core.backends.quantize import (
            Calibration,
            OnnxStaticSettings,
            OpenVinoStaticSettings,
            static_int8_onnxruntime,
            static_int8_openvino,
        )
        from core.backends.session import TorchSession
        from core.backends.verify import compare, probe_batches

        cfg: StaticInt8Config = self.config  # type: ignore[assignment]
        ctx.check_cancelled()
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"static_int8_{cfg.backend}_", dir=ctx.scratch)) / "artifact"
        calibration = Calibration(size=cfg.calibration_size, seed=ctx.seed, max_length=cfg.max_length)
        if cfg.backend == "openvino":
            result = static_int8_openvino(
                state.model, state.tokenizer, ctx.task, folder, calibration=calibration, progress=ctx.progress,
                settings=OpenVinoStaticSettings(preset=cfg.preset, fast_bias_correction=cfg.fast_bias_correction,
                                                smooth_quant=cfg.smooth_quant, embeddings_int8=cfg.embeddings_int8),
            )  # fmt: skip
        else:
            result = static_int8_onnxruntime(
                state.model, state.tokenizer, ctx.task, folder, calibration=calibration, progress=ctx.progress,
                settings=OnnxStaticSettings(per_channel=cfg.per_channel, activation_type=cfg.activation_type,
                                            embeddings_int8=cfg.embeddings_int8),
            )  # fmt: skip
        ctx.check_cancelled()
        loaded = load_backend_artifact(folder, threads=ctx.threads)
        # How far int8 moved the predictions from the float model (information, not a gate:
        # the dev-set metric of the file is what the user compares).
        reference = TorchSession(state.model, state.head, threads=loaded.session.threads,
                                 input_names=loaded.session.input_names)  # fmt: skip
        batches = probe_batches(ctx.task, state.tokenizer, size=64, seed=ctx.seed, max_length=cfg.max_length)
        agreement = compare(reference, loaded.session, batches, state.head, backend=cfg.backend, min_agreement=0.0)
        info = dict(state.info)
        info[self.id] = {**result.to_dict(), "agreement_with_float": agreement.agreement,
                         "max_abs_diff_vs_float": agreement.max_abs_diff, "probe_rows": agreement.examples}  # fmt: skip
        ctx.log(f"static int8 ({cfg.backend}): {result.int8_constants} int8 weight tensors, {result.bytes:,} bytes, "
                f"{agreement.agreement:.1%} of {agreement.examples} probe rows agree with the float model")
        ctx.progress(1.0, "Quantized")
        return ModelState(
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            task=state.task,
            head=state.head,
            transforms=list(state.transforms),
            traits=(state.traits - self.removes) | self.adds,
            info=info,
        )
