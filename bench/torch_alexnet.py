"""A PyTorch twin of alexnet.model.build_model (paper layout) for the throughput benchmark only.

Same layers, sizes, towers and LRN as the Keras model: 60,965,224 parameters at 1000 classes, two towers.
Each implementation choice that matters for speed is a switch, so the benchmark can give torch its best:
  towers_as: 'groups' (nn.Conv2d(groups=2)) or 'split' (one nn.Conv2d per tower, concatenated, as Keras)
  lrn:       'matmul' (the Keras layer's formulation) or 'native' (F.local_response_norm)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TowerConv(nn.Module):
    """A conv whose towers each see only their own slice of the input maps (paper, Sec. 3.2)."""

    def __init__(self, in_channels, out_channels, kernel_size, padding, towers, towers_as="groups"):
        super().__init__()
        self.towers = towers
        if towers_as == "groups":
            self.convs = nn.ModuleList(
                [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, groups=towers)]
            )
        else:
            self.convs = nn.ModuleList(
                nn.Conv2d(in_channels // towers, out_channels // towers, kernel_size, padding=padding)
                for _ in range(towers)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        return torch.cat(
            [conv(part) for conv, part in zip(self.convs, torch.chunk(x, self.towers, 1), strict=True)], 1
        )


class TowerLRN(nn.Module):
    """Sec. 3.3 LRN (k=2, n=5, alpha=1e-4, beta=0.75, sum not divided by n) within each tower, in float32."""

    def __init__(
        self,
        channels: int,
        towers: int,
        formulation: str = "matmul",
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
    ):
        super().__init__()
        self.towers, self.formulation, self.size, self.alpha, self.beta, self.k = (
            towers,
            formulation,
            size,
            alpha,
            beta,
            k,
        )
        index = torch.arange(channels)
        group = index // (channels // towers)
        window = ((index[:, None] - index[None, :]).abs() <= size // 2) & (group[:, None] == group[None, :])
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if self.formulation == "native":
                # F.local_response_norm divides alpha by n; pass alpha * n for the paper's formula.
                parts = torch.chunk(x, self.towers, dim=1)
                out = torch.cat(
                    [
                        F.local_response_norm(p, self.size, self.alpha * self.size, self.beta, self.k)
                        for p in parts
                    ],
                    dim=1,
                )
            else:
                square_sum = torch.einsum("nchw,cd->ndhw", x * x, self.window)
                denominator = self.k + self.alpha * square_sum
                out = x * torch.rsqrt(denominator) * torch.rsqrt(torch.sqrt(denominator))
        return out.to(dtype)


class AlexNetTwin(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        towers: int = 2,
        fc_units: int = 4096,
        dropout: float = 0.5,
        towers_as: str = "groups",
        lrn: str = "matmul",
        input_size: int = 224,
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2),  # conv1 55x55
            nn.ReLU(inplace=True),
            TowerLRN(96, towers, lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),  # pool1 27x27
            TowerConv(96, 256, 5, 2, towers, towers_as),  # conv2
            nn.ReLU(inplace=True),
            TowerLRN(256, towers, lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),  # pool2 13x13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # conv3
            nn.ReLU(inplace=True),
            TowerConv(384, 384, 3, 1, towers, towers_as),  # conv4
            nn.ReLU(inplace=True),
            TowerConv(384, 256, 3, 1, towers, towers_as),  # conv5
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # pool5 6x6
        )
        pool5_size = self.features(torch.zeros(1, 3, input_size, input_size)).shape[-1]  # 6 at 224
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * pool5_size * pool5_size, fc_units),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_units, fc_units),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_units, num_classes),  # fc8
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
