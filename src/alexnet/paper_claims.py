"""The paper's claims as data: each claim's words, section, kind, the runs it compares and the paper's number.

Every effect is signed so that positive is the paper's side: an error difference (the run without the feature
minus the run with it, a fraction), or the log of an epochs ratio. claims.py estimates each claim over seeds and
gives its verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alexnet.run_identity import BASELINE


@dataclass(frozen=True)
class Claim:
    key: str  # metric prefix in MLflow: claim.<key>.effect
    name: str
    section: str
    text: str  # the paper's words
    kind: str  # error | ten_crop | gap | ratio | matched_ratio | figure1
    paper_effect: float  # positive = the paper's side: error fraction, or log of the ratio
    paper_value: str
    variant: str | None = None  # error/gap: the run without the feature; ratio: the slower run
    against: str = BASELINE  # error/gap: the run with it; ratio: the faster run
    metric: str = "top1"  # error/ten_crop: top1 | top5
    paper_gives_number: bool = True  # False: paper_effect is our reading of a qualitative claim, for power only
    paper_at_least: bool = False  # the paper's number is a lower bound ("by over 1%")
    extra: str | None = None  # why this row is shown but not counted

    @property
    def ratio(self) -> bool:
        return self.kind in ("ratio", "matched_ratio", "figure1")

    @property
    def top5(self) -> bool:
        return self.metric == "top5"


_LRN = "Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%, respectively"
_POOL = "[overlapping pooling] reduces the top-1 and top-5 error rates by 0.4% and 0.3%, respectively"
_TOWERS = ("This scheme reduces our top-1 and top-5 error rates by 1.7% and 1.2%, respectively, as compared with "
           "a net with half as many kernels in each convolutional layer trained on one GPU")  # fmt: skip
# Sec. 6, footnote: without averaging over ten patches the ILSVRC-2010 test error rates are 39.0% and 18.3%,
# against 37.5% and 17.0% with it: a 1.5 (top-1) and 1.3 (top-5) point gain.
_TEN = "The error rates of our network without averaging predictions over ten patches [...] are 39.0% and 18.3%"
_RELU = ("a four-layer convolutional neural network with ReLUs reaches a 25% training error rate on CIFAR-10 "
         "six times faster than an equivalent network with tanh neurons")  # fmt: skip
CLAIMS = (
    Claim("lrn_top1", "LRN (top-1)", "Sec. 3.3", _LRN, "error", 0.014, "1.4 pt", "no_lrn"),
    Claim("lrn_top5", "LRN (top-5)", "Sec. 3.3", _LRN, "error", 0.012, "1.2 pt", "no_lrn", metric="top5"),
    Claim("overlap_pool_top1", "Overlapping pooling (top-1)", "Sec. 3.4", _POOL, "error", 0.004, "0.4 pt",
          "no_overlap_pool"),
    Claim("overlap_pool_top5", "Overlapping pooling (top-5)", "Sec. 3.4", _POOL, "error", 0.003, "0.3 pt",
          "no_overlap_pool", metric="top5"),
    Claim("pca_lighting_top1", "PCA lighting (top-1)", "Sec. 4.1", "reduces the top-1 error rate by over 1%",
          "error", 0.01, "> 1 pt", "no_pca_lighting", paper_at_least=True),
    Claim("two_gpus_top1", "Two GPUs vs one-GPU net (top-1)", "Sec. 3.2, fn. 2", _TOWERS, "error", 0.017, "1.7 pt",
          "one_gpu"),
    Claim("two_gpus_top5", "Two GPUs vs one-GPU net (top-5)", "Sec. 3.2, fn. 2", _TOWERS, "error", 0.012, "1.2 pt",
          "one_gpu", metric="top5"),
    Claim("ten_crop_top1", "10-crop vs centre crop (top-1)", "Sec. 6, fn.", _TEN, "ten_crop", 0.015, "1.5 pt",
          BASELINE),
    Claim("ten_crop_top5", "10-crop vs centre crop (top-5)", "Sec. 6, fn.", _TEN, "ten_crop", 0.013, "1.3 pt",
          BASELINE, metric="top5"),
    Claim("relu_figure1", "ReLU vs tanh (Figure 1)", "Sec. 3.1, Fig. 1", _RELU, "figure1", math.log(6.0), "6x"),
    Claim("dropout_gap", "Dropout (overfitting gap)", "Sec. 4.2",
          "Without dropout, our network exhibits substantial overfitting", "gap", 0.01,
          "substantial (no number; 1 pt assumed for power)", "no_dropout", paper_gives_number=False),
    Claim("dropout_iterations", "Dropout (iterations)", "Sec. 4.2",
          "Dropout roughly doubles the number of iterations required to converge", "ratio", math.log(2.0), "2x",
          BASELINE, against="no_dropout"),
    Claim("relu_full_net", "ReLU vs tanh, full net", "Sec. 3.1", _RELU, "ratio", math.log(6.0), "6x", "tanh"),
    Claim("relu_full_net_matched", "ReLU vs tanh, full net (to tanh's best error)", "Sec. 3.1", _RELU,
          "matched_ratio", math.log(6.0), "6x", "tanh",
          extra="extra: the target is the lowest training error tanh reached, chosen from the data; for when "
                "neither net reaches 25%"),
    Claim("dropout_val_top1", "Dropout (val top-1)", "Sec. 4.2", "not a claim of the paper", "error", 0.01,
          "none (1 pt assumed for power)", "no_dropout", paper_gives_number=False,
          extra="not a claim of the paper: dropout's effect on val top-1, shown beside its two claims"),
)  # fmt: skip
