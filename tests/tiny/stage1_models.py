"""Tiny randomly initialised Stage 1 models (CLIP, SigLIP, chat causal LM) saved to a folder.

They exercise the real loading and inference code paths (from_pretrained on a local path) without a
model hub; their outputs are meaningless but deterministic.
"""
from __future__ import annotations

import json
from pathlib import Path

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,-'"


def _clip_tokenizer(folder: Path):
    """CLIPTokenizer from a character-level vocab.json and an empty merges.txt written here."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")), len(vocab)


def _word_tokenizer(words: list[str], specials: list[str], chat_template: str | None = None):
    """A WordLevel fast tokenizer (whitespace + punctuation split) over `words`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in [*specials, *words]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    if chat_template:
        fast.chat_template = chat_template
    return fast, len(vocab)


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer CLIPModel (hidden 32, 32 px images) with tokenizer and image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    tokenizer, vocab_size = _clip_tokenizer(folder / "_vocab")
    text = dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_siglip(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer SiglipModel (hidden 32, 32 px images) with a word-level tokenizer."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    from iapas.models.vocabulary import vocabulary

    folder = Path(folder)
    words = sorted({w for term in vocabulary() for w in term.replace("-", " ").split()} | {"a", "photo", "of"})
    tokenizer, vocab_size = _word_tokenizer(words + list(".,-"), ["<pad>", "<unk>", "</s>"])
    text = dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64, pad_token_id=0, eos_token_id=2,
    )
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)

LM_WORDS = [
    "crack", "scratch", "dent", "stain", "hole", "rust", "bent", "missing", "wire", "tile", "surface", "the",
    "image", "shows", "a", "an", "list", "short", "words", "defects", "on", "and", ",", ".", ":", "-",
    "system", "user", "assistant", "magnetic", "bottle", "metal", "nut", "glue", "blowhole", "fray", "uneven",
]


def build_tiny_chat_lm(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer Llama causal LM (hidden 32) whose tokenizer has a chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer, vocab_size = _word_tokenizer(LM_WORDS, ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"], CHAT_TEMPLATE)
    tokenizer.eos_token = "<|im_end|>"
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 3
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
