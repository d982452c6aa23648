"""bench/peer.py gives the peer the same network as iapas: timm's tf_efficientnet_lite0 loaded with the packaged
EfficientNet-Lite0 weights produces the same features as iapas's backbone (to 1e-4). Skipped where timm is not
installed (it belongs in the separate peer environment: its torchvision dependency is CUDA-built)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_peer():  # noqa: ANN201 - the bench module
    spec = importlib.util.spec_from_file_location("peer_bench", ROOT / "bench" / "peer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_networks_give_the_same_features() -> None:
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (the peer environment has it)")
    import torch

    from iapas.models.backbone import LiteFeatures

    peer = load_peer()
    full = peer.timm_lite0()
    assert len(full.state_dict()) == 296  # every tensor mapped one to one
    timm_feats = peer.timm_lite0(features_only=True, out_indices=(2, 3))  # timm blocks.2 (s8), blocks.4 (s16)
    ours = LiteFeatures("efficientnet-lite0")
    rgb = (np.random.default_rng(0).random((96, 160, 3)) * 255).astype(np.uint8)
    x = ours.to_tensor(rgb)
    with torch.no_grad():
        theirs = timm_feats(x)
    for a, b in zip(ours(x, (2, 4)), theirs):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) < 1e-4


def test_plain_peer_scores_a_drawn_defect(tmp_path: Path) -> None:
    from iapas.data.synthetic import draw_defect, load_texture, random_crop

    peer = load_peer()
    rng = np.random.default_rng(0)
    tex = load_texture("brick")
    normals = [np.repeat(random_crop(tex, (128, 128), rng)[..., None], 3, 2) for _ in range(4)]
    p = peer.PlainPeer()
    p.fit(normals)
    img, mask = draw_defect(random_crop(tex, (128, 128), rng), "hole", rng)
    m, score = p.predict(np.repeat(img[..., None], 3, 2))
    assert m.shape == (peer.PEER_SIZE, peer.PEER_SIZE) and score == pytest.approx(float(m.max()))
    from PIL import Image

    big = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(m.shape[::-1])) > 127
    assert m[big].mean() > 1.5 * m[~big].mean()
