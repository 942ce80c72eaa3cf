"""quantize.static_int8 on OpenVINO (NNCF) and ONNX Runtime: int8 in the file, agreement with the
float model, the deployable folder as the variant's artifact."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.backends.artifact import is_backend_artifact, load_backend_artifact, save_deployed
from core.backends.deploy import OK, UNSUPPORTED, deploy_variant
from core.errors import ConfigError
from core.measure import evaluate
from core.state import FLOAT, TRAINABLE
from core.steps.base import get_step
from core.steps.static_int8 import DEPLOYED, INT8, StaticInt8Config
from tests.core.backends_support import trained_tiny_state
from tests.core.steps_support import make_ctx, tiny_task

STEP = get_step("quantize.static_int8")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("int8")
    float_state = trained_tiny_state(tmp)
    task = tiny_task(n=32)
    out = {"float": float_state, "task": task, "tmp": tmp}
    for backend in ("openvino", "onnxruntime"):
        step = STEP(StaticInt8Config(backend=backend, calibration_size=16))
        out[backend] = step.apply(float_state, make_ctx(tmp, task, threads=1))
    return out


def test_openvino_ir_holds_int8_weights(quantized: dict[str, Any]) -> None:
    folder = quantized["openvino"].model.folder
    xml = (folder / "model.xml").read_text()
    int8_consts = re.findall(r'<layer id="\d+" name="[^"]*" type="Const" version="opset1">\s*<data element_type="(?:i8|u8)"', xml)
    fake_quantize = xml.count('type="FakeQuantize"')
    assert len(int8_consts) >= 12 and fake_quantize >= 12  # 2 layers x 6 Linear weights + activations
    info = quantized["openvino"].info["quantize.static_int8"]
    assert info["int8_constants"] >= 12
    assert info["calibration"]["rows"] == 16 and info["calibration"]["split"] == "train"


def test_onnx_file_holds_qdq_nodes_and_int8_initializers(quantized: dict[str, Any]) -> None:
    import onnx

    folder = quantized["onnxruntime"].model.folder
    model = onnx.load(str(folder / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DequantizeLinear") >= 12 and ops.count("QuantizeLinear") >= 6
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    tables = [i for i in model.graph.initializer if i.data_type in eight_bit and len(i.dims) == 2]
    # 12 encoder Linear weights (int8) + word, position and token-type tables (embeddings_int8; the
    # quantized Gather stores its table in the activation type, uint8)
    assert len(tables) >= 15
    assert sum(i.data_type == onnx.TensorProto.INT8 for i in tables) >= 12
    settings = quantized["onnxruntime"].info["quantize.static_int8"]["settings"]
    assert settings["per_channel"] and settings["format"] == "QDQ"


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_int8_keeps_the_float_predictions_and_metric(quantized: dict[str, Any], backend: str) -> None:
    state, float_state, task = quantized[backend], quantized["float"], quantized["task"]
    info = state.info["quantize.static_int8"]
    assert info["agreement_with_float"] >= 0.95 and info["probe_rows"] == 16
    reference = evaluate(float_state.model, float_state.tokenizer, task, threads=1)
    result = evaluate(state.model, state.tokenizer, task, threads=1)  # the adapter runs the int8 file
    assert reference.primary == 1.0  # the easy task is learnt: a real check of int8, not of noise
    assert result.primary >= reference.primary - 0.07
    assert sum(a == b for a, b in zip(result.predictions, reference.predictions, strict=True)) >= 15


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_the_variant_is_the_deployable_folder(quantized: dict[str, Any], backend: str) -> None:
    state = quantized[backend]
    assert state.traits == (quantized["float"].traits - {FLOAT, TRAINABLE}) | {INT8, DEPLOYED}
    target = quantized["tmp"] / f"saved_{backend}"
    size = save_deployed(state.model, target, extra={"base_model": "tiny"})
    assert is_backend_artifact(target) and size == sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["quantization"]["method"] == "static_int8" and manifest["precision"] == "int8"
    assert manifest["base_model"] == "tiny" and manifest["backend"] == backend
    loaded = load_backend_artifact(target, threads=1)
    batch = state.tokenizer(["the good movie", "a bad film !"], return_tensors="pt", padding=True)
    assert (loaded.model(**batch).logits == state.model(**batch).logits).all()
    if backend == "openvino":  # timed and scored as a plain compile_model runs it, not pinned to f32
        import openvino as ov

        default = ov.Core().compile_model(str(target / "model.xml"), "CPU").get_property("INFERENCE_PRECISION_HINT")
        assert loaded.session.precision == "default" and loaded.session.used_precision == default.get_type_name()
    # a static int8 file runs on its own backend only
    other = "onnxruntime" if backend == "openvino" else "openvino"
    task = quantized["task"]
    assert deploy_variant(state.model, state.tokenizer, task, backend, None).status == OK
    refused = deploy_variant(state.model, state.tokenizer, task, other, quantized["tmp"] / "x")
    assert refused.status == UNSUPPORTED and "runs on" in refused.message
    assert deploy_variant(state.model, state.tokenizer, task, "torch", None).status == UNSUPPORTED


def test_config_keeps_backend_specific_fields_to_their_backend() -> None:
    assert StaticInt8Config().backend == "openvino"
    StaticInt8Config(backend="onnxruntime", per_channel=False, activation_type="int8", embeddings_int8=False)
    StaticInt8Config(backend="openvino", preset="performance", smooth_quant=False)
    with pytest.raises(ConfigError, match="per_channel applies to the onnxruntime backend only") as err:
        StaticInt8Config(backend="openvino", per_channel=False)
    assert err.value.field == "per_channel"
    with pytest.raises(ConfigError, match="preset applies to the openvino backend only"):
        StaticInt8Config(backend="onnxruntime", preset="performance")
    with pytest.raises(ConfigError, match="calibration_size"):
        StaticInt8Config(calibration_size=0)
    assert StaticInt8Config.from_dict(StaticInt8Config().to_dict()) == StaticInt8Config()
    assert STEP.requires == {FLOAT} and STEP.category == "Quantization"


def test_step_declaration_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys\nimport core.steps.static_int8, core.backends\nfrom core.steps.base import all_steps\n"
            "all_steps()\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'onnx', 'onnxruntime', 'openvino', 'nncf')))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert out.stdout.strip() == "[]", out.stderr
