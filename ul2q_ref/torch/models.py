"""The paper's four networks in PyTorch, as in the authors' Caffe prototxts.

Read from GongCheng1919/uL2Q (commit c2f9c48): ``examples/mnist/ULQ/lenet_train_test_ulq*``,
``examples/cifar10/ULQ/cifar10_full_train_test_ulq*``,
``examples/cifar10/ULQ/vgg7_64_train_test_bn_ulq*`` and ``models/ResNet-18/ULQ/resnet18_ulq*``.
Call :func:`ul2q_ref.torch.quantize_model` on them for the paper's quantisation (every conv
and linear weight at k bits, the classifier at max(k, 8), ResNet-18's fc in float).

Parameter counts (``sum(p.numel() for p in model.parameters())``: weights, biases and the
BatchNorm affine γ, β; BatchNorm running statistics are buffers and not counted):

=========  ==============  ==========================================================
model      parameters      Table II
=========  ==============  ==========================================================
LeNet5     431,080         0.43M
Cifarnet   89,578          0.279M in the paper; the prototxt's network has 89,578
VGG7-64    5,352,778       5.35M (5,350,986 without the 1,792 BatchNorm γ, β)
ResNet-18  11,689,512      11.69M
=========  ==============  ==========================================================
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    """Caffe's LeNet: conv1 20@5×5, max-pool 2/2, conv2 50@5×5, max-pool 2/2, fc1 500, ReLU,
    fc2 10 (no ReLU after the convolutions, as in Caffe). The same network, layer names and
    parameter layout as the NumPy trainer's ``lenet5``, so :func:`export_model` can write it."""

    ul2q_numpy_model = "lenet5"
    ul2q_classifier = "fc2"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28
                 ) -> None:
        super().__init__()
        self.ul2q_numpy_kwargs = {"in_channels": in_channels, "num_classes": num_classes,
                                  "input_size": input_size}
        side = ((input_size - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class WithinChannelLRN(nn.Module):
    """Caffe's LRN with ``norm_region: WITHIN_CHANNEL``: x / (1 + α·mean_{n×n}(x²))^β."""

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> None:
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = nn.functional.avg_pool2d(x * x, self.size, 1, self.size // 2,
                                        count_include_pad=True)
        return x / (1.0 + self.alpha * mean) ** self.beta


class Cifarnet(nn.Module):
    """Caffe's ``cifar10_full``: conv1 32@5×5 pad 2, max-pool 3/2, ReLU, LRN, conv2 32@5×5,
    ReLU, avg-pool 3/2, LRN, conv3 64@5×5, ReLU, avg-pool 3/2, ip1 10 (pools round up, as
    Caffe's do: 32 → 16 → 8 → 4)."""

    ul2q_classifier = "ip1"

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm1 = WithinChannelLRN()
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.pool2 = nn.AvgPool2d(3, 2, ceil_mode=True)
        self.norm2 = WithinChannelLRN()
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.pool3 = nn.AvgPool2d(3, 2, ceil_mode=True)
        self.ip1 = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(torch.relu(self.pool1(self.conv1(x))))
        x = self.norm2(self.pool2(torch.relu(self.conv2(x))))
        x = self.pool3(torch.relu(self.conv3(x)))
        return self.ip1(x.flatten(1))


class VGG7(nn.Module):
    """VGG7-64 with BatchNorm: 2×(conv 64) pool, 2×(conv 128) pool, 2×(conv 256) pool (3×3
    pad 1, each followed by BatchNorm + Scale, i.e. ``BatchNorm2d``, and ReLU; max-pool 2/2),
    ip1 1024, ReLU, dropout 0.5, ip2 10."""

    ul2q_classifier = "ip2"

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width):
            for _ in range(2):
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=True)]
                channels = out
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.ip1 = nn.Linear(channels * 4 * 4, 1024)
        self.dropout = nn.Dropout(0.5)
        self.ip2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        return self.ip2(self.dropout(torch.relu(self.ip1(x))))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity (or 1×1-conv) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample: nn.Module | None = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                            nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 for 224×224 ImageNet: conv1 64@7×7/2, max-pool 3/2, four stages of two basic
    blocks (64, 128, 256, 512), global average pool, fc 1000. The fork quantises every
    convolution and keeps the last fully connected layer in float (``ul2q_skip``). `width`
    (64 in the paper) scales every stage, for small tests."""

    ul2q_skip = ("fc",)
    ul2q_classifier = "fc"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        inputs = width
        for index, outputs in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(inputs, outputs, stride),
                                        BasicBlock(outputs, outputs, 1)))
            inputs = outputs
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"lenet5": LeNet5, "cifarnet": Cifarnet, "vgg7": VGG7, "resnet18": ResNet18}
"""``--model`` names of ``examples/train_torch.py``."""


def parameter_count(model: nn.Module) -> int:
    """Weights, biases and BatchNorm γ, β (not the running statistics)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "VGG7", "Cifarnet", "LeNet5", "ResNet18", "parameter_count"]
