"""Tiny randomly initialised Stage 2 models (Grounding DINO, MM-Grounding-DINO, OWLv2, SAM, SAM-HQ) saved to folders.

They run the real transformers loading, processing and post-processing code from a local path (no
hub). Weights are random, so outputs are meaningless but deterministic for a fixed seed; each model
is small enough that a full paper-profile prediction takes well under a second on CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

# Words the tests put in prompts; everything else maps to [UNK].
WORDS = [
    "a", "crack", "scratch", "defect", "abnormal", "tile", "magnetic", "hole", "dent", "stain",
    "rust", "chip", "blowhole", "fray", "break", "uneven", "surface", "object", "metal", "nut",
]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_bert_vocab(path: Path, words: list[str] = WORDS) -> Path:
    """vocab.txt for a BertTokenizer: specials, '.', then the prompt words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*BERT_SPECIALS, ".", *words]) + "\n", encoding="utf-8")
    return path


def build_tiny_grounding_dino(folder: Path, seed: int = 0, max_text_len: int = 16, mm: bool = False) -> Path:
    """A Grounding DINO (or MM-Grounding-DINO) with a 1-layer Swin / BERT; text encoder fits 16 tokens."""
    import torch
    from transformers import BertConfig, BertTokenizer, GroundingDinoProcessor, SwinConfig
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    folder = Path(folder)
    tok = BertTokenizer(str(write_bert_vocab(folder / "_vocab" / "vocab.txt")), do_lower_case=True)
    swin = SwinConfig(
        image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2,
        out_indices=[2, 3, 4],
    )
    bert = BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=max_text_len,
    )
    common = dict(
        backbone_config=swin, text_config=bert, num_queries=30, encoder_layers=1, decoder_layers=2, d_model=32,
        encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2,
        max_text_len=max_text_len, encoder_n_points=1, decoder_n_points=1,
    )
    if mm:
        from transformers import MMGroundingDinoConfig, MMGroundingDinoForObjectDetection

        config, model_cls = MMGroundingDinoConfig(**common), MMGroundingDinoForObjectDetection
    else:
        from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

        config, model_cls = GroundingDinoConfig(**common), GroundingDinoForObjectDetection
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=tok
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _clip_word_tokenizer(folder: Path, words: list[str]):
    """CLIPTokenizer whose vocab holds each word whole (and single letters); BOS/EOS have the top ids.

    OWL pools text at the argmax token id (must be EOS) and masks queries whose first id is 0.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"!": 0}
    merges: list[str] = []
    for w in words:
        for c in w:
            vocab.setdefault(c, len(vocab))
            vocab.setdefault(c + "</w>", len(vocab))
        pieces = list(w[:-1]) + [w[-1] + "</w>"]
        while len(pieces) > 1:  # left-to-right merges that rebuild the whole word
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            vocab.setdefault(pieces[0], len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    seen: list[str] = []
    for m in merges:
        if m not in seen:
            seen.append(m)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(seen) + "\n", encoding="utf-8")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!", model_max_length=16)
    return tok, vocab


def build_tiny_owlv2(folder: Path, seed: int = 0) -> Path:
    """An OWLv2 with 1-layer text / vision towers on 32 px images (4 x 4 patch grid = 16 boxes)."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    folder = Path(folder)
    tok, vocab = _clip_word_tokenizer(folder / "_vocab", WORDS)
    text = dict(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=0,
    )
    vision = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=16)).eval()
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_sam(folder: Path, seed: int = 0, hq: bool = False) -> Path:
    """A SAM (or SAM-HQ) with a 2-layer ViT on 64 px inputs (8 x 8 embedding grid)."""
    import torch

    folder = Path(folder)
    vision = dict(
        hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=8,
        window_size=4, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=16,
    )
    prompt = dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = dict(hidden_size=16, mlp_dim=16, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16)
    sizes = dict(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16},
    )
    if hq:
        from transformers import SamHQConfig, SamHQModel, SamHQProcessor
        from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

        decoder["vit_dim"] = 16
        config = SamHQConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
        model_cls, processor = SamHQModel, SamHQProcessor(image_processor=SamImageProcessorPil(**sizes))
    else:
        from transformers import SamConfig, SamModel, SamProcessor
        from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

        config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
        model_cls, processor = SamModel, SamProcessor(image_processor=SamImageProcessorPil(**sizes))
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
