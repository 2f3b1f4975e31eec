"""TANL: test-time activated negative labels (Zhang et al., CVPR 2026).

A test-time method (:class:`oodbench.scorer.StreamScorer`). Higher = more ID. The "activation" of an image
over a large corpus of candidate labels is its softmax ``a(v) = softmax(s v.[t_ID ; t_corpus])`` restricted
to the corpus. Two FIFO queues of activations, of images admitted as ID-like and as OOD-like, rank the
corpus labels by ``d = mean(Q_neg) - mean(Q_pos)``; the top M = 1000 are the negatives, in that order, and
the activation-aware score averages NegLabel's ID mass over the prefixes of that list:

    S_aa(v) = 1/|P| sum_{m in P} sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j <= m} e^{l~_(j)}),   P = {s', 2s', ..., M}

(step s' = 1; s' = 0 is plain single-group NegLabel). Admission thresholds come from Otsu's threshold of
the recent scores; the queues start from the ID text features (as ID-like "images") and 15 noise images
(as OOD-like). Details: :func:`tanl_stream_scores`.

Paper: "Activation Matters: Test-time Activated Negative Labels for OOD Detection with Vision-Language
Models", arXiv 2603.25250. Official code: ``YBZh/OpenOOD-VLM`` @ 804f331, postprocessor ``actneg``
(``ActivatedNegPostprocessor``, ``openood/postprocessors/activated_neg_postprocessor.py``), scripts
``scripts/ood/TANL/official.sh``. Corpus: the OpenOOD-VLM bank (:mod:`oodbench.methods.openood_bank`), all
69,554 candidates on ImageNet, the 10,000 AdaNeg negatives first. Published FPR95: OOD-positive
(OpenOOD's rule, ``--fpr-convention openood``).

Defaults: the paper's setting (Sec. 4.1 as ReNeg's ``TANLConfig.paper()`` states it; the repository's
``3debug.sh`` uses it too): gap 0.2, alpha 0.95, step 1; M = 1000, queue 300, score buffer 20,000, batch
256, scale 100. ``official=true`` takes ``official.sh``'s values instead (gap 0.5, alpha 0.0; that script
runs step 2, 1 and 0 in turn: pass ``-p tanl.step=N``); an explicit ``gap`` / ``alpha`` wins. Also with
``official=true``: the top-M labels are ordered by torch's default (unstable) sort as the official code
(only exact ties in d, rare on real features, are affected; their order is then the device's). Not
emulated: the fp16 logits and softmaxes of the official fp16 runs' final score. The official start-up
shuffles and noise images draw from the unseeded global RNG; here the noise images are drawn once per fit
from ``--seed`` and the shuffles per stream from the stream's seed.

Checked against the official postprocessor run on the same float32 features (C = 1000, corpus 69,554,
batch 256, 3,000-image streams in which Otsu's threshold moves and images are admitted): scores within
7.5e-7 / 8.0e-7 / 9.5e-7 for ``official=true`` with step 2 / 1 / 0, 8.7e-7 with the paper's gap and alpha,
no differing ID prediction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from oodbench.methods.common import check_batch_size, check_features
from oodbench.methods.openood_bank import OpenOodBankParams
from oodbench.params import param
from oodbench.scorer import FitContext, MethodInfo, StreamScorer, StreamScores

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- pure math
PAPER = {"gap": 0.2, "alpha": 0.95}     # Sec. 4.1 per ReNeg's TANLConfig.paper(); also 3debug.sh
OFFICIAL = {"gap": 0.5, "alpha": 0.0}   # scripts/ood/TANL/official.sh (it sweeps step over 2, 1, 0)


def otsu_grid() -> torch.Tensor:
    """Otsu's candidate thresholds, the float32 values 0.00, 0.01, ..., 0.99 (the official grid)."""
    return torch.arange(0, 1, 0.01, dtype=torch.float32)


def tanl_stream_scores(image_features: torch.Tensor, id_text_features: torch.Tensor,
                       corpus_text_features: torch.Tensor, noise_image_features: torch.Tensor, *,
                       batch_size: int = 256, official: bool = False, num_negatives: int = 1000,
                       queue_length: int = 300, gap: float | None = None, alpha: float | None = None,
                       step: int = 1, score_buffer_length: int = 20000, logit_scale: float = 100.0,
                       seed: int = 0, generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32) -> StreamScores:
    """TANL scores of a stream of images, in stream order (higher = more ID).

    Activation of an image over the corpus: ``a(v) = softmax(s v.[t_ID ; t_corpus])`` restricted to the
    N corpus entries (s = ``logit_scale``). Two FIFO queues of at most L = ``queue_length`` activation rows,
    Q_pos (ID-like) and Q_neg (OOD-like), define the label activation difference
    ``d = mean(Q_neg) - mean(Q_pos)``; the M = ``num_negatives`` corpus labels with the largest d, in
    descending order of d, are the negatives. Activation-aware score with step s' = ``step``:
    ``S_aa(v) = 1/|P| sum_{m in P} sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j<=m} e^{l~_(j)})`` over the
    prefixes ``P = {s', 2s', ..., M}`` (the last one clipped to M; ``step=0``: P = {M}, plain NegLabel).

    Start (every call: one call per ID+OOD stream): Q_pos = activations of the C ID text features taken as
    images, rows shuffled, last L kept; Q_neg = activations of the noise images, rows shuffled; the score
    buffer B = S_aa of those text and noise features under the initial selection. Per batch:

    1. ``c0 = S_aa`` with the queue-only selection; append to B (keep the last ``score_buffer_length``);
       theta = Otsu's threshold of B over the grid 0.00..0.99 (:func:`otsu_threshold`).
    2. Admit as ID when ``c0 > theta + gap (1 - theta)``, as OOD when ``c0 < theta - gap theta``.
    3. Batch-adaptive means ``alpha mean(Q) + (1 - alpha) mean(admitted activations)`` (the queue mean
       alone when none is admitted); reselect the top M by their difference.
    4. Output ``S_aa`` with that selection; prediction ``argmax_c v.t_c``. Push the admitted activations.

    Defaults: the paper's setting (gap 0.2, alpha 0.95, step 1), M = 1000, L = 300, buffer 20,000, batch
    256. ``official=True`` takes ``scripts/ood/TANL/official.sh``'s values instead (gap 0.5, alpha 0.0;
    that script runs step 2, 1 and 0 in turn: pass ``step``). Explicit ``gap``/``alpha`` win. The
    official code draws the two start-up shuffles (``randperm(C)`` then ``randperm(len(noise))``) from the
    unseeded global RNG; here they come from ``generator`` (default: a CPU generator seeded with
    ``seed``), so ``torch.manual_seed(seed)`` before the official reset gives the same shuffles.
    Not reproduced: the official final score comes from fp16 logits and fp16 softmaxes in its fp16 runs
    (threshold scores are fp32); on float32 inputs both are float32.

    Noise images (OpenOOD-VLM ``clip_fixed_ood_prompt.py``): 15 images, see :func:`tanl_noise_images`;
    encode them with the backbone *without* the CLIP mean/std normalisation and L2-normalise.

    Args:
        image_features: [N, D] L2-normalised image features in stream order.
        id_text_features: [C, D] L2-normalised ID label features.
        corpus_text_features: [N_c, D] the whole candidate corpus (OpenOOD-VLM: the 10,000 AdaNeg negatives
            followed by the 59,554 unselected words, 69,554 in all). Exact ties in d (activations that
            underflow to 0 in float32 for labels far from every queued image) go to the earlier entry; with
            ``official=True`` they follow torch's default unstable sort, as the official code (its order
            depends on the device and the torch build, so it matches the official run on the same one).
        noise_image_features: [Z, D] L2-normalised features of the noise images.
        dtype: dtype of the matmuls and activations (float32 as the official code on float32 inputs);
            S_aa and Otsu run in float64.

    Returns:
        :class:`StreamScores`: float64 scores [N] and int64 ID predictions [N].
    """
    check_batch_size(batch_size)
    check_features("id_text_features", id_text_features)
    dim = id_text_features.shape[1]
    check_features("image_features", image_features, dim)
    check_features("corpus_text_features", corpus_text_features, dim)
    check_features("noise_image_features", noise_image_features, dim)
    settings = OFFICIAL if official else PAPER
    gap = settings["gap"] if gap is None else gap
    alpha = settings["alpha"] if alpha is None else alpha
    n_id, n_corpus = id_text_features.shape[0], corpus_text_features.shape[0]
    if not 1 <= num_negatives <= n_corpus:
        raise ValueError(f"num_negatives must be between 1 and the corpus size {n_corpus}; got {num_negatives}")
    if step < 0 or queue_length < 1:
        raise ValueError(f"step must be >= 0 and queue_length >= 1; got {step}, {queue_length}")
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))
    stable = not official

    device = image_features.device
    ids = id_text_features.to(device, dtype)
    labels = torch.cat([ids, corpus_text_features.to(device, dtype)])  # [C + N_c, D]
    prefixes = _prefix_ends(num_negatives, step).to(device)

    def corpus_activation(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax((logit_scale * x) @ labels.T, dim=1)[:, n_id:]

    def score(x: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        sx = logit_scale * x
        return activation_aware_score(sx @ ids.T, sx @ labels[n_id + selected].T, prefixes)

    # start-up state
    noise = noise_image_features.to(device, dtype)
    perm_pos = torch.randperm(n_id, generator=generator).to(device)
    perm_neg = torch.randperm(noise.shape[0], generator=generator).to(device)
    q_pos = corpus_activation(ids[perm_pos[-queue_length:]])
    q_neg = corpus_activation(noise[perm_neg])[-queue_length:]
    mean_pos, mean_neg = q_pos.mean(dim=0), q_neg.mean(dim=0)
    selected = _top(mean_neg - mean_pos, num_negatives, stable)
    buffer = torch.cat([score(ids, selected), score(noise, selected)])

    scores, preds = [], []
    for start in range(0, image_features.shape[0], batch_size):
        v = image_features[start:start + batch_size].to(device, dtype)
        logits = (logit_scale * v) @ labels.T  # [B, C + N_c]
        activation = torch.softmax(logits, dim=1)[:, n_id:]
        id_logits = logits[:, :n_id]
        preds.append(id_logits.argmax(dim=1))

        selected = _top(mean_neg - mean_pos, num_negatives, stable)
        c0 = activation_aware_score(id_logits, logits[:, n_id + selected], prefixes)
        buffer = torch.cat([buffer, c0])[-score_buffer_length:]
        theta = float(otsu_threshold(buffer))
        to_pos = c0 > theta + gap * (1 - theta)
        to_neg = c0 < theta - gap * theta

        new_pos, new_neg = activation[to_pos], activation[to_neg]
        adapt_pos = alpha * mean_pos + (1 - alpha) * new_pos.mean(dim=0) if len(new_pos) else mean_pos
        adapt_neg = alpha * mean_neg + (1 - alpha) * new_neg.mean(dim=0) if len(new_neg) else mean_neg
        selected = _top(adapt_neg - adapt_pos, num_negatives, stable)
        scores.append(activation_aware_score(id_logits, logits[:, n_id + selected], prefixes))

        if len(new_pos):
            q_pos = torch.cat([q_pos, new_pos])[-queue_length:]
            mean_pos = q_pos.mean(dim=0)
        if len(new_neg):
            q_neg = torch.cat([q_neg, new_neg])[-queue_length:]
            mean_neg = q_neg.mean(dim=0)
    if not scores:
        return StreamScores(torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.int64))
    return StreamScores(torch.cat(scores), torch.cat(preds))


def activation_aware_score(id_logits: torch.Tensor, neg_logits: torch.Tensor,
                           prefix_ends: torch.Tensor) -> torch.Tensor:
    """``1/|P| sum_{m in P} sigmoid(LSE(l_ID) - LSE(l~_1..m))``: TANL's S_aa, [B] float64.

    ``neg_logits`` [B, M] are in the selection's order (most activated first); ``prefix_ends`` holds the
    prefix lengths m (see :func:`_prefix_ends`). Uses a log-cumsum-exp over the negatives, so all |P|
    softmaxes cost one pass.
    """
    lse_id = torch.logsumexp(id_logits.double(), dim=1, keepdim=True)
    cum = torch.logcumsumexp(neg_logits.double(), dim=1)[:, prefix_ends - 1]
    return torch.sigmoid(lse_id - cum).mean(dim=1)


def _prefix_ends(num_negatives: int, step: int) -> torch.Tensor:
    """Prefix lengths {step, 2 step, ..., M} (last clipped to M); {M} for step 0."""
    if step == 0:
        return torch.tensor([num_negatives])
    return torch.clamp(torch.arange(step, num_negatives + step, step), max=num_negatives)


def _top(difference: torch.Tensor, count: int, stable: bool = True) -> torch.Tensor:
    """Indices of the ``count`` largest values, largest first; ties keep the earlier index, or, with
    ``stable=False``, the order of torch's default (unstable) sort on that device, as the official code."""
    return torch.sort(difference, descending=True, stable=stable).indices[:count]


def otsu_threshold(values: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Otsu's threshold over a fixed grid: the theta minimising ``w0 var0 + w1 var1``.

    Class 1 is ``values >= theta``, w are the class fractions and var the population variances; a
    threshold leaving a class empty scores +inf. Among tied minima (equal partitions) the middle one
    (index ``len // 2`` of the tied list) is taken, as in the TANL code. Exact float64 class statistics from
    cumulative sums of the sorted, centred values. ``grid`` defaults to :func:`otsu_grid`.
    """
    grid = otsu_grid() if grid is None else grid
    x = torch.sort(values.double()).values
    n = x.numel()
    n0 = torch.searchsorted(x, grid.double().to(x.device), right=False)  # count of values < theta
    n1 = n - n0
    x = x - x.mean()  # centred: the class sums below lose nothing to cancellation
    zero = x.new_zeros(1)
    csum = torch.cat([zero, torch.cumsum(x, 0)])
    csq = torch.cat([zero, torch.cumsum(x * x, 0)])
    s0, q0 = csum[n0], csq[n0]
    s1, q1 = csum[-1] - s0, csq[-1] - q0
    c0, c1 = n0.clamp(min=1).double(), n1.clamp(min=1).double()
    within = (q0 - s0 * s0 / c0) + (q1 - s1 * s1 / c1)  # n0 var0 + n1 var1
    crit = torch.where((n0 == 0) | (n1 == 0), torch.inf, within / n)
    ties = torch.nonzero(crit == crit.min()).flatten()
    return grid[ties[len(ties) // 2]]


def tanl_noise_images(generator: torch.Generator | None = None,
                      size: int | tuple[int, int] = 224) -> torch.Tensor:
    """TANL's 15 noise images, [15, 3, H, W] in [0, 1] (``size`` = H = W, or ``(H, W)``), as OpenOOD-VLM
    builds them (``clip_fixed_ood_prompt.py``, ``FixedCLIP_NegOODPrompt.__init__``; 224 x 224 there).

    Three each of: Gaussian (randn), uniform (rand), Poisson(5), Gamma(2, 1), each block of three min-max
    scaled to [0, 1] together; then three binary salt-and-pepper images (rand >= 0.5). The official code
    draws them unseeded once per network; Gamma(2, 1) is drawn here as the sum of two Exp(1) variables
    (the same distribution) so that ``generator`` controls every draw. Feed them to the image encoder
    without CLIP's mean/std normalisation.
    """
    h, w = (size, size) if isinstance(size, int) else size
    shape = (3, 3, h, w)

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return (x - x.min()) / (x.max() - x.min())

    gaussian = scaled(torch.randn(shape, generator=generator))
    uniform = torch.rand(shape, generator=generator)
    poisson = scaled(torch.poisson(torch.full(shape, 5.0), generator=generator))
    gamma = scaled(-torch.log(torch.rand(shape, generator=generator))
                   - torch.log(torch.rand(shape, generator=generator)))
    salt = (torch.rand(shape, generator=generator) >= 0.5).float()
    return torch.cat([gaussian, uniform, poisson, gamma, salt])


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class TANL(StreamScorer, OpenOodBankParams):
    """TANL with the paper's setting by default, ``official=true`` for ``official.sh``'s (module docstring).

    ``num_negatives`` is M, the activated negatives used per batch (capped at the corpus size on small
    lexicons); ``bank_negatives`` is the size of the OpenOOD-VLM selection that leads the corpus (it only
    orders the corpus, which matters for exact ties alone).
    """

    info = MethodInfo(
        paper="Zhang et al., Activation Matters: Test-time Activated Negative Labels for OOD Detection with "
              "Vision-Language Models, CVPR 2026",
        summary="test-time: NegLabel's ID mass over prefixes of the corpus labels most activated by "
                "OOD-like minus ID-like test images (queues, Otsu threshold)",
        url="https://github.com/YBZh/OpenOOD-VLM",
    )
    batch_size: int = param(256, ge=1)
    official: bool = False
    num_negatives: int = param(1000, ge=1)
    queue_length: int = param(300, ge=1)
    gap: float | None = param(None, ge=0, le=1)
    alpha: float | None = param(None, ge=0, le=1)
    step: int = param(1, ge=0)
    score_buffer_length: int = param(20_000, ge=1)
    logit_scale: float = param(100.0, gt=0)
    bank_negatives: int = param(10_000, ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def fit(self, ctx: FitContext) -> None:
        bank = self.build_bank(ctx, self.bank_negatives, "TANL")
        self.id_features = bank.id_features
        self.corpus_features = bank.features
        self.negatives_used = min(self.num_negatives, len(bank.words))
        if self.negatives_used < self.num_negatives:
            log.info("TANL: num_negatives=%d capped at the corpus size, %d", self.num_negatives,
                     self.negatives_used)
        noise = tanl_noise_images(torch.Generator().manual_seed(int(ctx.seed)), ctx.backbone.image_size)
        self.noise_features = ctx.backbone.encode_image_tensors(noise)
        self._fitted = {**bank.facts, "corpus": len(bank.words), "negatives_used": self.negatives_used,
                        "noise_images": len(noise), "noise_image_size": list(noise.shape[-2:]),
                        "noise_seed": int(ctx.seed)}
        log.info("TANL: corpus of %d labels, %d activated negatives per batch", len(bank.words),
                 self.negatives_used)

    def score_stream(self, image_features: torch.Tensor, *, seed: int) -> StreamScores:
        """One stream; ``seed`` seeds the start-up shuffles of the queues."""
        if not hasattr(self, "corpus_features"):
            raise RuntimeError("TANL.score_stream called before fit")
        return tanl_stream_scores(
            image_features, self.id_features, self.corpus_features, self.noise_features,
            batch_size=self.batch_size, official=self.official, num_negatives=self.negatives_used,
            queue_length=self.queue_length, gap=self.gap, alpha=self.alpha, step=self.step,
            score_buffer_length=self.score_buffer_length, logit_scale=self.logit_scale, seed=seed)

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)
