"""The network (alexnet.py) and its layers (lrn.py)."""

from alexnet.model.alexnet import PaperDropout, TowerConv2D, build_model
from alexnet.model.lrn import LocalResponseNormalization

__all__ = ["LocalResponseNormalization", "PaperDropout", "TowerConv2D", "build_model"]
