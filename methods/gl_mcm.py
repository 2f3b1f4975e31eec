"""GL-MCM: global-local maximum concept matching (Miyai, Yu, Irie, Aizawa, IJCV 2025). Higher = more ID.

With the global image feature v_g, the P patch features v_p (MaskCLIP's value path of the last block, see
:mod:`oodbench.backbone.patches`) and the ID class text features t_c, all L2-normalised,

    S = max_c softmax_c(v_g . t / T) + lambda * max_p max_c softmax_c(v_p . t / T)

where each patch's softmax runs over the classes alone. The first term is MCM, the second L-MCM.
Reference ``AtsuMiyai/GL-MCM`` @ 8708a08: ``utils/detection_util.py`` L108-133 (score),
``eval_ood_detection.py`` L28 (``--T``, an int, default 1) and L35 (``--lambda_local``, default 1.0); prompt
``"a photo of a {}"`` (``detection_util.py`` L116).

lambda: default 1.0, the argparse default, the value of the COCO/VOC scripts, and the only value the code
had before the weight was added (commit 796b9ba, June 2024), so every GL-MCM number published before then
used it. The repository's ImageNet script (``scripts/eval_imagenet.sh``, kept in the IJCV update 9cc73e2)
passes 0.5: ``-p gl-mcm.lambda_local=0.5``.

Checked against the official code: its ``get_ood_scores_clip`` on random features agrees to 1.3e-8
(GL-MCM, lambda 1) and 9.8e-9 (L-MCM); its vendored CLIP tower, loaded with the same weights, gives the
same local features to 1.6e-7 (ViT-B/16, the tiny test models, RN50). Storing the patch features in fp16,
as the cache does, changes L-MCM by at most 1.9e-6.

Cost: the local term is N x P x C x D multiply-adds (6e12 for 60,000 ViT-B/16 images and 1,000 classes),
done as blocked float32 GEMMs on the scorer's device; see :func:`local_mcm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.errors import OodbenchError
from oodbench.methods.common import max_softmax
from oodbench.params import param
from oodbench.scorer import ClassHeadScorer, FitContext, MethodInfo

#: Logits held per block of the local term: 8M float32 (32 MB, about a server CPU's last-level cache), so
#: that the max / exp / sum passes after each GEMM read the block from cache. Measured on one EPYC core
#: (ViT-B/16 sizes): 40 GMAC per CPU-second with blocks of 16-32 images against 31 with 85 images; the
#: plain GEMM reaches 45.
LOCAL_BLOCK_ELEMENTS = 1 << 23


def local_mcm(patch_features: torch.Tensor, text_features: torch.Tensor, temperature: float = 1.0,
              dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """L-MCM ``max_p max_c softmax_c(v_p . t_c / T)`` over the patches of each image, float64 [N] on the CPU.

    Per patch, ``max_c softmax_c(l) = 1 / sum_c exp(l_c - max_c l)``, so the score is ``1 / min_p`` of that
    sum. Blocks of images are moved to ``device`` (default: where ``patch_features`` are; e.g. the GPU for a
    memory-mapped CPU cache), converted to ``dtype`` and multiplied with the text features in one GEMM of
    ``[block x P, D] @ [D, C]``; the max, exponential and sum then run in place on that block. float32
    cosines carry ~1e-7 relative error, far below the spread of the scores; pass ``torch.float64`` for exact
    checks.

    Args:
        patch_features: [N, P, D] L2-normalised patch features (any float dtype, e.g. fp16 from the cache).
        text_features: [C, D] L2-normalised ID class text features.
        temperature: T > 0 on raw cosines (reference: 1).
        dtype: compute precision of the cosines and the softmax.
        device: where to compute.
    """
    if patch_features.ndim != 3:
        raise ValueError(f"patch features must be [N, P, D]; got {tuple(patch_features.shape)}")
    n, p, d = patch_features.shape
    if text_features.ndim != 2 or text_features.shape[1] != d or text_features.shape[0] == 0:
        raise ValueError(f"text features {tuple(text_features.shape)} do not match patch features "
                         f"{tuple(patch_features.shape)}")
    device = torch.device(device) if device is not None else patch_features.device
    text = (text_features.to(device, dtype) / temperature).T.contiguous()
    images = max(1, LOCAL_BLOCK_ELEMENTS // max(p * text.shape[1], 1))
    out = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, images):
        x = patch_features[start:start + images].to(device, dtype)
        logits = x.reshape(-1, d) @ text  # [b * P, C]
        logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
        sums = logits.sum(dim=1).view(x.shape[0], p)  # sum_c exp(l_c - max l) >= 1 per patch
        out[start:start + x.shape[0]] = sums.min(dim=1).values.double().reciprocal().cpu()
    return out


def glmcm_score(image_features: torch.Tensor, patch_features: torch.Tensor, text_features: torch.Tensor,
                temperature: float = 1.0, lambda_local: float = 1.0, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """GL-MCM ``MCM(v_g) + lambda * L-MCM(v_1..v_P)``; higher = more ID.

    Args:
        image_features: [N, D] L2-normalised global image features.
        patch_features: [N, P, D] L2-normalised patch features of the same images.
        text_features: [C, D] L2-normalised ID class text features.
        temperature: T > 0 on raw cosines (reference: 1).
        lambda_local: weight of the local term (default 1.0; the reference's ImageNet script uses 0.5).
        dtype, device: precision and device of the local term (see :func:`local_mcm`); the global term is
            float64 on the global features' device.

    Returns:
        [N] float64 scores in [(1 + lambda) / C, 1 + lambda].
    """
    if not temperature > 0:
        raise OodbenchError(f"GL-MCM's temperature must be positive; got {temperature}.")
    if lambda_local < 0:
        raise OodbenchError(f"GL-MCM's lambda_local must be non-negative; got {lambda_local}.")
    if patch_features.shape[0] != image_features.shape[0]:
        raise ValueError(f"{image_features.shape[0]} global features but {patch_features.shape[0]} sets of "
                         "patch features")
    local = local_mcm(patch_features, text_features, temperature, dtype, device)
    return max_softmax(image_features, text_features, temperature).cpu() + lambda_local * local


@dataclass
class GLMCM(ClassHeadScorer):
    """GL-MCM with the reference defaults: T = 1, lambda = 1, prompt "a photo of a {}".

    Needs patch features (``features = ("global", "patch")``): the runner hands them to :meth:`score`
    as ``patch_features`` ([N, P, D] fp16, memory-mapped); the local term runs on the backbone's device.
    ID accuracy is the zero-shot argmax of the global features, as MCM's.
    """

    info = MethodInfo(
        paper="Miyai, Yu, Irie, Aizawa, GL-MCM: Global and Local Maximum Concept Matching for Zero-Shot "
              "Out-of-Distribution Detection, IJCV 2025",
        summary="MCM(global) + lambda * max over patches of MCM(patch), T = 1, lambda = 1",
        url="https://github.com/AtsuMiyai/GL-MCM",
    )
    features = ("global", "patch")
    temperature: float = param(1.0, gt=0)
    lambda_local: float = param(1.0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._device: torch.device | None = None

    def fit(self, ctx: FitContext) -> None:
        super().fit(ctx)
        self._device = ctx.device

    def score(self, image_features: torch.Tensor, patch_features: torch.Tensor | None = None) -> torch.Tensor:
        if patch_features is None:
            raise ValueError("GL-MCM scores global and patch features: call score(image_features, "
                             "patch_features=...) with the [N, P, D] patch features of the same images")
        return glmcm_score(image_features, patch_features, self.text_features, self.temperature,
                           self.lambda_local, device=self._device)
