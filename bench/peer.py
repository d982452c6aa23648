"""iapas (offline profile) beside anomalib's PatchCore, on the same data, weights and normal images.

    python bench/peer.py [--datasets bottle,mtd,synthetic,parts,strip,fine,tiles] [--limit N] [--out DIR]
                         [--peer anomalib|plain] [--threads 1]

Both tools get the same r normal images (iapas's sample, seed 111) and the same test images (bench/suite.py's
datasets, `--limit` evenly spread), and are scored by the same code (the standard protocol of
`iapas evaluate`: maps and masks at 256 x 256, `evaluation.protocols.category_metrics`).

The peer is anomalib's PatchCore (`pip install iapas[peer]`; see below) with its defaults as a user runs
them: blocks 2 and 4 of timm's `tf_efficientnet_lite0` (strides 8 and 16), 3x3 average pooling, a 10%
greedy coreset, 256 x 256 input, 9-neighbour reweighting of the image score, Gaussian sigma 4. Its network
gets iapas's packaged ImageNet EfficientNet-Lite0 weights, mapped tensor by tensor onto timm's names
(`timm_state_dict`; tests/test_peer.py checks both networks give the same features), so the comparison
is about the method, not the weights.

anomalib's torchvision wheel is built against CUDA torch; beside the CPU torch its compiled operators do
not load and importing torchvision fails while registering them (PatchCore never calls them).
`allow_torchvision_without_ops` declares their schemas first so the import succeeds. Keep anomalib out of
the environment iapas runs in, e.g. `python -m venv --system-site-packages /opt/peer &&
/opt/peer/bin/pip install -c <(echo torch==2.13.0) anomalib` and run this script with that Python.
`--peer plain` (also used when anomalib is missing) is a plain-torch PatchCore on the same blocks and
weights, written here, labelled as such in the table: it is not anomalib.

Time per image: load + predict, one image at a time, both tools in this process with the same threads.
Writes OUT/peer.json and OUT/peer.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PEER_LAYERS = ("blocks.2", "blocks.4")  # anomalib's PatchCore default layers for EfficientNet backbones
PEER_SIZE = 256
PEER_CORESET = 0.1
PEER_NEIGHBOURS = 9
TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
    "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
    "SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
    "SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)
_LIBRARY: Any = None


def allow_torchvision_without_ops() -> None:
    """Declare torchvision's operator schemas so a CUDA-built torchvision imports beside the CPU torch.

    The operators stay without kernels (calling one fails); PatchCore and timm's EfficientNet never do.
    A no-op when torchvision's own operators are already registered.
    """
    global _LIBRARY
    import sys

    import torch

    if _LIBRARY is not None or hasattr(torch.ops, "torchvision") and _has_op("nms"):
        return
    try:  # a torchvision built for this torch registers its own operators: nothing to declare
        import torchvision  # noqa: F401
        return
    except RuntimeError:  # "operator torchvision::nms does not exist": forget the half-imported package
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    for schema in TORCHVISION_SCHEMAS:
        try:
            _LIBRARY.define(schema)
        except RuntimeError:  # already defined by a working torchvision
            pass


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def timm_state_dict(model: Any) -> dict[str, Any]:
    """iapas's packaged EfficientNet-Lite0 weights under the names of a timm `tf_efficientnet_lite0` `model`.

    Both architectures list their tensors in the same order with the same shapes (stem, 16 blocks, head:
    296 tensors with the batch-norm statistics); the classifier head is kept when `model` has one.

    Returns:
        A state dict for `model.load_state_dict(..., strict=True)`.
    """
    import torch

    from iapas.models.backbone import weights_path

    packaged = torch.load(weights_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    source = [(k, v) for k, v in packaged.items()]
    target = list(model.state_dict().items())
    if len(target) > len(source):
        raise ValueError(f"timm model has {len(target)} tensors, the packaged weights {len(source)}")
    out = {}
    for (tk, tv), (sk, sv) in zip(target, source):
        if tuple(tv.shape) != tuple(sv.shape):
            raise ValueError(f"tensor {tk} {tuple(tv.shape)} does not match packaged {sk} {tuple(sv.shape)}")
        out[tk] = sv.clone()
    return out


def timm_lite0(features_only: bool = False, out_indices: tuple[int, ...] | None = None) -> Any:
    """timm's tf_efficientnet_lite0 with iapas's packaged ImageNet weights, in eval mode."""
    allow_torchvision_without_ops()
    import timm

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    full.load_state_dict(timm_state_dict(full), strict=True)
    if not features_only:
        return full.eval()
    feat = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                             out_indices=out_indices or (2, 3))
    missing, _ = feat.load_state_dict(full.state_dict(), strict=False)
    if missing:
        raise ValueError(f"features-only model lacks weights for {missing[:3]}")
    return feat.eval()


def to_input(rgb: np.ndarray, size: int = PEER_SIZE) -> Any:
    """An RGB uint8 image as the peer's input: squashed to size x size, ImageNet-normalised, (1, 3, S, S)."""
    import torch
    from PIL import Image

    from iapas.models.backbone import IMAGENET_MEAN, IMAGENET_STD

    im = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    x = (im - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


class AnomalibPeer:
    """anomalib's PatchcoreModel with the packaged weights; fit on normal images, maps of test images."""

    label = "anomalib PatchCore"

    def __init__(self) -> None:
        allow_torchvision_without_ops()
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        self.model = PatchcoreModel(layers=list(PEER_LAYERS), backbone="tf_efficientnet_lite0", pre_trained=False,
                                    num_neighbors=PEER_NEIGHBOURS)
        fe = self.model.feature_extractor.feature_extractor
        full = timm_lite0()
        missing, _ = fe.load_state_dict(full.state_dict(), strict=False)
        if missing:
            raise ValueError(f"anomalib's feature extractor lacks weights for {missing[:3]}")
        self.model.feature_extractor.eval()

    def fit(self, rgbs: list[np.ndarray]) -> None:
        import torch

        self.model.train()
        self.model.feature_extractor.eval()
        with torch.no_grad():
            for rgb in rgbs:
                self.model(to_input(rgb))
        self.model.subsample_embedding(PEER_CORESET)
        self.model.eval()

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        import torch

        with torch.no_grad():
            out = self.model(to_input(rgb))
        return out.anomaly_map[0, 0].numpy().astype(np.float32), float(out.pred_score.reshape(-1)[0])


class PlainPeer:
    """A plain-torch PatchCore (not anomalib): iapas's packaged network, blocks 2 and 4, 3x3 pooling,
    10% greedy coreset, 256 x 256, nearest-neighbour map, Gaussian sigma 4, max of the map as image score."""

    label = "PatchCore (plain torch, not anomalib)"

    def __init__(self) -> None:
        from iapas.models.backbone import load_backbone

        self.bb = load_backbone("efficientnet-lite0")
        self.bank: Any = None

    def _embed(self, rgb: np.ndarray) -> tuple[Any, tuple[int, int]]:
        import torch
        import torch.nn.functional as F

        feats = self.bb(to_input(rgb), (2, 4))  # lite0 stage 2 = timm blocks.2 (s8), stage 4 = blocks.4 (s16)
        with torch.inference_mode():
            f = [F.avg_pool2d(t, 3, 1, 1) for t in feats]
            grid = f[0].shape[-2:]
            f[1] = F.interpolate(f[1], size=grid, mode="bilinear", align_corners=False)
            e = torch.cat(f, 1)[0]
        return e.reshape(e.shape[0], -1).t().contiguous(), (int(grid[0]), int(grid[1]))

    def fit(self, rgbs: list[np.ndarray]) -> None:
        import torch

        from iapas.stages.reference import coreset

        feats = torch.cat([self._embed(r)[0] for r in rgbs]).numpy()
        keep = coreset(feats, max(1, int(PEER_CORESET * feats.shape[0])), dim=128)
        self.bank = torch.from_numpy(feats[keep])

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        import torch
        import torch.nn.functional as F
        from scipy.ndimage import gaussian_filter

        from iapas.stages.reference import nn_distance

        q, grid = self._embed(rgb)
        d = nn_distance(q, self.bank).reshape(1, 1, *grid)
        up = F.interpolate(d, size=(PEER_SIZE, PEER_SIZE), mode="nearest")[0, 0].numpy()
        m = gaussian_filter(up, 4).astype(np.float32)
        return m, float(m.max())


def make_peer(which: str) -> Any:
    """The anomalib peer, or the plain-torch one (asked for, or anomalib missing: said on stderr)."""
    if which == "plain":
        return PlainPeer()
    try:
        return AnomalibPeer()
    except ImportError as exc:
        if which == "anomalib-only":
            raise
        print(f"note: anomalib not importable ({exc}); using the plain-torch PatchCore, labelled as such",
              file=sys.stderr)
        return PlainPeer()


def evaluate_part(part: Any, config: Any, limit: int | None, peer_kind: str, size: int = 256) -> dict[str, Any]:
    """Both tools on one dataset part: the same normal and test images, the same metrics code."""
    from iapas.data import get_reader
    from iapas.data.base import mask_array
    from iapas.evaluation.harness import limit_samples
    from iapas.evaluation.protocols import category_metrics
    from iapas.evaluation.resample import resize_map, resize_mask
    from iapas.io.images import load_image
    from iapas.pipeline import Pipeline

    reader = get_reader(part.reader)
    cats = list(part.categories or reader.find_categories(part.root))
    rows: dict[str, dict[str, list]] = {}
    for cat in cats:
        split = reader.load(part.root, cat)
        kind = part.kind or split.kind
        pipe = Pipeline(config.model_copy(update={"kind": kind}))
        sampled = pipe.select_normal(list(split.normal_pool))
        test = limit_samples(split.test_for(sampled, "standard"), limit)
        normals = [load_image(p) for p in sampled]
        ctx = pipe.fit(sampled)
        peer = make_peer(peer_kind)
        peer.fit([im.rgb for im in normals])
        for sample in test:
            gt = mask_array(sample.mask_path) if sample.mask_path else None
            for tool in ("iapas", peer.label):
                t0 = time.perf_counter()
                im = load_image(sample.image_path)
                if tool == "iapas":
                    pred = pipe.predict_one(im, ctx)
                    m, s = pred.score_map, pred.image_score
                else:
                    m, s = peer.predict(im.rgb)
                sec = time.perf_counter() - t0
                h, w = im.rgb.shape[:2]
                g = gt if gt is not None else np.zeros((h, w), dtype=bool)
                r = rows.setdefault(tool, {"maps": [], "masks": [], "labels": [], "scores": [], "seconds": []})
                r["maps"].append(resize_map(m, size))
                r["masks"].append(resize_mask(g, size))
                r["labels"].append(int(sample.label))
                r["scores"].append(s)
                r["seconds"].append(sec)
    out = {}
    for tool, r in rows.items():
        met = category_metrics(np.stack(r["maps"]), np.stack(r["masks"]), np.asarray(r["labels"]),
                               np.asarray(r["scores"], dtype=np.float64), "standard")
        met["ms_per_image"] = 1000.0 * float(np.mean(r["seconds"]))
        out[tool] = met
    return out


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE))
    import suite  # bench/suite.py: the same datasets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="bottle,mtd,synthetic,parts,strip,fine,tiles")
    ap.add_argument("--limit", type=int, default=None, help="at most N test images per category (evenly spread)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/iapas-peer"))
    ap.add_argument("--peer", choices=("anomalib", "plain", "anomalib-only"), default="anomalib")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from iapas.config import build_config

    torch.set_num_threads(args.threads)
    config = build_config(profile="offline", threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    groups, notes = suite.suite_datasets([n.strip() for n in args.datasets.split(",") if n.strip()], args.out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    results: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    for parts in groups:
        acc: dict[str, dict[str, list[float]]] = {}
        for part in parts:
            for tool, met in evaluate_part(part, config, args.limit, args.peer).items():
                a = acc.setdefault(tool, {})
                for k in ("pixel_ap", "pixel_auroc", "pixel_f1_max", "image_auroc", "ms_per_image", "n_images"):
                    v = met.get(k)
                    if v is not None and v == v:
                        a.setdefault(k, []).append(float(v))
        results[parts[0].name] = {tool: {k: (sum(v) if k == "n_images" else sum(v) / len(v)) for k, v in a.items()}
                                  for tool, a in acc.items()}
    lines = [f"## iapas (offline, defaults) vs PatchCore: r = {config.num_normal} normal images (seed {config.seed}), "
             f"limit {args.limit or 'none'}, standard protocol at 256 px, {args.threads} thread(s), "
             f"{time.perf_counter() - t0:.0f} s", "",
             "| dataset | tool | pixel AP | pixel AUROC | F1-max | image AUROC | ms/image | images |",
             "|---|---|---|---|---|---|---|---|"]
    for name, tools in results.items():
        for tool, m in tools.items():
            cells = [f"{100 * m[k]:.2f}" if k in m else "-" for k in ("pixel_ap", "pixel_auroc", "pixel_f1_max", "image_auroc")]
            lines.append(f"| {name} | {tool} | " + " | ".join(cells) + f" | {m.get('ms_per_image', 0):.0f} | "
                         f"{int(m.get('n_images', 0))} |")
    text = "\n".join(lines)
    print(text)
    (args.out / "peer.json").write_text(json.dumps({"limit": args.limit, "results": results}, indent=2), encoding="utf-8")
    (args.out / "peer.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
