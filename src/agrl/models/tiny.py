"""The tiny default judge: a small Llama trained from scratch, with a word-level tokenizer.

The vocabulary is built from the benchmark's text, so the whole pipeline (SFT, GRPO, AGRL,
evaluation, serving) runs on a laptop CPU in minutes. It saves and loads like any Hugging Face
model (`save_pretrained` / `from_pretrained`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers as pt
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from agrl.reasoning import THINK_FIRST

SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]
# Section tags are single tokens: shorter sequences, and a tag can never be half-generated.
TAGS = [f"<{name}>" for name in THINK_FIRST] + [f"</{name}>" for name in THINK_FIRST]

# The assistant turn ends with eos inside {% generation %}: TRL does not append eos to
# conversational data, and a judge that never learns to stop wastes its whole token budget.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def _pre_tokenizer() -> pt.PreTokenizer:
    # Metaspace glues "▁" to each word so decoding restores spaces exactly; then every digit and
    # every punctuation mark (keeping a leading "▁") becomes its own piece, newlines too.
    return pt.Sequence(
        [
            pt.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            pt.Split("\n", behavior="isolated"),
            pt.Split(Regex(r"▁?[^\w▁\s]|▁?\d"), behavior="isolated"),
        ]
    )


def build_tokenizer(
    corpus: Iterable[str], min_count: int = 1, max_length: int = 512
) -> PreTrainedTokenizerFast:
    """A lower-cased word-level tokenizer over the pieces of `corpus`; anything else is <unk>."""
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre = _pre_tokenizer()
    counts: dict[str, int] = {}
    for text in corpus:
        for piece, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[piece] = counts.get(piece, 0) + 1
            # The same word after a newline (no "▁") or right after a tag, whose rstrip eats the
            # newline so that the word starts a segment and gets a "▁".
            other = piece[1:] if piece.startswith("▁") else f"▁{piece}" if piece[:1].isalnum() else ""
            if len(other) > 1 or other[:1].isalnum():
                counts[other] = counts.get(other, 0) + 1
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL)}
    basics = list("0123456789") + list("+-*/=()[]{}.,:;!?'\"%$#@&<>|_^~`\\") + ["▁", "\n"]
    for piece in basics + [f"▁{c}" for c in basics if c not in ("▁", "\n")]:
        vocab.setdefault(piece, len(vocab))
    for piece in sorted(counts, key=lambda p: (-counts[p], p)):
        if counts[piece] >= min_count:
            vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.add_tokens([AddedToken(t, lstrip=True, rstrip=True, normalized=False) for t in TAGS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL[4:],
        padding_side="left",
        model_max_length=max_length,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden: int = 192,
    layers: int = 4,
    heads: int = 6,
    intermediate: int = 512,
    max_positions: int = 512,
    seed: int = 0,
) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model
