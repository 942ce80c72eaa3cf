"""How a sequence-level head sees the sentence: the first token's vector, or the mean over its tokens.

Hugging Face's classification and regression heads read the first token ([CLS], <s>): BERT through its
pooler, RoBERTa, DistilBERT and MPNet directly. Sentence encoders such as all-MiniLM-L6-v2 were
trained with mean pooling, and their first token was never trained to summarise the sentence: fine-tuned
through it on small data, the packaged model reaches 0.24 CoLA MCC and 57 % RTE; read through the mean,
0.29 and 59 % (benchmarks/bench_finetune.py, same steps and seed).

``mean`` is a forward hook on ``model.base_model``: it writes the attention-masked mean of the last
hidden states into the first position (and re-runs the pooler when the family has one), so every
family's own head reads the mean, no weights are added, and exporters that trace the module (ONNX,
OpenVINO) bake it into the file. The choice is stored in config.json under :data:`POOLING_FIELD`, so
the workbench's loaders re-install it; plain ``transformers`` ignores that field (README, "Pooling").
"""

from __future__ import annotations

from typing import Any

from core.errors import ModelLoadError

POOLING_FIELD = "workbench_pooling"
FIRST_TOKEN = "first_token"
MEAN = "mean"
POOLINGS = (FIRST_TOKEN, MEAN)
POOLED_HEADS = frozenset({"classification", "regression"})  # QA heads read every token


def pooling_of(config: Any) -> str:
    """The pooling a model's config records; first token when it records none (every plain checkpoint)."""
    value = getattr(config, POOLING_FIELD, None)
    if value is None:
        return FIRST_TOKEN
    if value not in POOLINGS:
        raise ModelLoadError(
            f"config.json: field '{POOLING_FIELD}' is {value!r}; it must be one of {', '.join(POOLINGS)}"
        )
    return value


def install_pooling(model: Any, head: str | None = None) -> Any:
    """Make ``model`` pool as its config says (idempotent); returns the model. Given a ``head`` that reads
    every token (QA), a pooling its config recorded for an earlier sentence-level head is reset to the first
    token: the mean would overwrite [CLS], SQuAD 2.0's no-answer position."""
    if head is not None and head not in POOLED_HEADS and pooling_of(model.config) != FIRST_TOKEN:
        setattr(model.config, POOLING_FIELD, FIRST_TOKEN)
    base = model.base_model
    wanted = pooling_of(model.config) == MEAN
    installed = _mean_into_first_token in base._forward_hooks.values()
    if wanted and not installed:
        base.register_forward_hook(_mean_into_first_token, with_kwargs=True)
    elif installed and not wanted:  # hook handles do not survive deepcopy, so remove by identity
        for key, hook in list(base._forward_hooks.items()):
            if hook is _mean_into_first_token:
                del base._forward_hooks[key]
                base._forward_hooks_with_kwargs.pop(key, None)
    return model


def set_pooling(model: Any, pooling: str) -> Any:
    """Record ``pooling`` in the model's config and install it."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    setattr(model.config, POOLING_FIELD, pooling)
    return install_pooling(model)


def _mean_into_first_token(base: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
    """A plain function (not a closure over a module), so ``copy.deepcopy`` of the model keeps it working."""
    import torch

    hidden = output[0]
    mask = kwargs.get("attention_mask")
    if mask is None:
        mean = hidden.mean(dim=1)
    else:
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    hidden = torch.cat([mean.unsqueeze(1), hidden[:, 1:]], dim=1)
    pooler = getattr(base, "pooler", None)
    if isinstance(output, tuple):  # return_dict=False: (last hidden, pooled if the family pools, ...)
        pooled = (pooler(hidden),) if pooler is not None and len(output) > 1 else ()
        return (hidden, *pooled, *output[1 + len(pooled):])
    output["last_hidden_state"] = hidden
    if pooler is not None and output.get("pooler_output") is not None:
        output["pooler_output"] = pooler(hidden)
    return output
