"""The networks of the two papers, plus small defaults for the bundled digits data.

Architectures follow docs/experiments.md §1.1 (the pruning-limit paper's public definitions, Zhang et al.,
NeurIPS 2024, arXiv 2306.05857); the parameter counts ``D`` quoted there are tested in
``tests/nets/test_models.py``:

============  ===================================================  =================
name          architecture                                         D
============  ===================================================  =================
``fc5``       Linear 3072→1000→600→300→100→10, ReLU                3 885 010 (C10)
``fc12``      Linear 3072→1000→900→…→200→100→10, ReLU              7 269 610 (C10)
``alexnet``   CIFAR AlexNet, input upsampled ×7 (nearest) to 224   46 787 978 (C10)
``vgg16``     VGG16 with BatchNorm, conv bias, Linear 512→classes  14 728 266 (C10)
``resnet18``  CIFAR ResNet18 (BasicBlock [2, 2, 2, 2])             11 220 132 (C100)
``resnet50``  CIFAR ResNet50 (Bottleneck [3, 4, 6, 3])             23 705 252 (C100)
``resnet20``  He et al. 2016 CIFAR ResNet20 (option A shortcut)    269 722 (C10)
``mlpnet``    LeNet-300-100: flatten→300→100→classes, ReLU         266 610 (MNIST)
``mlp``       digits default: flatten→32→classes, ReLU             2 410 (digits)
``cnn``       digits default: 2 convs + max-pool + Linear          3 818 (digits)
============  ===================================================  =================

Provenance of the two appendix models (the pruning-limit paper names them without definitions in the
material we have): ``resnet20`` is the CIFAR ResNet of He et al. (2016, "Deep residual learning", §4.2,
n = 3: 16/32/64 channels, parameter-free zero-padding "option A" shortcuts, ≈0.27M parameters);
``mlpnet`` is LeNet-300-100 (LeCun et al. 1998), the fully connected net used throughout the
lottery-ticket line of work (Frankle & Carbin 2019). Both are *our* choice of the standard definitions.

Initialisation (docs/experiments.md §1.1): Kaiming normal (fan_in, gain √2) on every conv/linear weight, biases 0,
BatchNorm weight 1 / bias 0, drawn from an explicit ``torch.Generator``.

The two ResNets use adaptive average pooling instead of a fixed ``avg_pool2d(4)`` so that the same
definition serves 32×32 CIFAR and 64×64 TinyImageNet; the parameter count is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from theory.validation import check_int

__all__ = [
    "FC5",
    "FC12",
    "MLP",
    "MLPNet",
    "AlexNet",
    "VGG16",
    "ResNet18",
    "ResNet50",
    "ResNet20",
    "DigitsCNN",
    "MODEL_NAMES",
    "build_model",
    "init_weights",
]


# --------------------------------------------------------------------------------------------- helpers
def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Kaiming-normal initialisation (fan_in, gain √2) of conv/linear weights, zero biases, BN (1, 0).

    ``w ~ N(0, 2 / fan_in)`` (He et al. 2015, eq. 10), the authors' choice (docs/experiments.md §1.1). In place;
    returns ``model``.

    >>> m = init_weights(nn.Linear(4, 3, bias=True), torch.Generator().manual_seed(0))
    >>> float(m.bias.detach().abs().sum())
    0.0
    """
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(mod.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            if mod.weight is not None:
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
    return model


def _mlp_layers(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Fully connected ReLU network ``in_features → hidden[0] → … → num_classes`` (input flattened)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        widths = [int(in_features), *[int(h) for h in hidden], int(num_classes)]
        if any(w < 1 for w in widths):
            raise ValueError(f"all layer widths must be >= 1, got {widths}")
        self.widths = tuple(widths)
        self.net = _mlp_layers(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FC5(MLP):
    """FC5 of the pruning-limit paper: 3072→1000→600→300→100→10 on CIFAR-10 (D = 3 885 010)."""

    HIDDEN = (1000, 600, 300, 100)

    def __init__(self, in_features: int = 3072, num_classes: int = 10) -> None:
        super().__init__(in_features, self.HIDDEN, num_classes)


class FC12(MLP):
    """FC12: 3072→1000→900→800→750→700→650→600→500→400→200→100→10 (D = 7 269 610 on CIFAR-10)."""

    HIDDEN = (1000, 900, 800, 750, 700, 650, 600, 500, 400, 200, 100)

    def __init__(self, in_features: int = 3072, num_classes: int = 10) -> None:
        super().__init__(in_features, self.HIDDEN, num_classes)


class MLPNet(MLP):
    """LeNet-300-100 (LeCun et al. 1998): in→300→100→classes; 266 610 parameters on MNIST (784 inputs)."""

    HIDDEN = (300, 100)

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__(in_features, self.HIDDEN, num_classes)


class AlexNet(nn.Module):
    """CIFAR AlexNet of the pruning-limit paper: 32×32 input upsampled ×7 (nearest) to 224×224.

    Conv(3→96, k11, s4, p1) ReLU MaxPool(3, 2); Conv(96→256, k5, p2) ReLU MaxPool(3, 2);
    Conv(256→384, k3, p1) ReLU; Conv(384→384, k3, p1) ReLU; Conv(384→256, k3, p1) ReLU MaxPool(3, 2);
    Linear 6400→4096→4096→classes with ReLU; no BatchNorm, no dropout. D = 46 787 978 for 10 classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 5 * 5, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=7, mode="nearest")
        return self.classifier(self.features(x))


class VGG16(nn.Module):
    """VGG16 with BatchNorm: cfg [64,64,M,128,128,M,256×3,M,512×3,M,512×3,M], 3×3 convs with bias.

    Each conv is followed by BatchNorm and ReLU; after the five max-pools a 32×32 input is 512×1×1,
    classified by one Linear 512→classes. D = 14 728 266 for 10 classes.
    """

    CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                  512, 512, 512, "M")

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), kernel_size=3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU()]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class _CifarResNet(nn.Module):
    """CIFAR-style ResNet: 3×3 stem with 64 channels, stride 1, no max-pool, four stages, 1×1 conv + BN shortcuts."""

    def __init__(self, block: type[nn.Module], num_blocks: Sequence[int], num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        stages = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, planes, stride))
                cin = planes * block.expansion  # type: ignore[attr-defined]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


class ResNet18(_CifarResNet):
    """CIFAR ResNet18 (BasicBlock [2, 2, 2, 2]); D = 11 220 132 on CIFAR-100."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(_BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


class ResNet50(_CifarResNet):
    """CIFAR ResNet50 (Bottleneck [3, 4, 6, 3]); D = 23 705 252 on CIFAR-100."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(_Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


class _PadShortcut(nn.Module):
    """He et al. (2016) option A: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, extra: int) -> None:
        super().__init__()
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class _BlockA(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = _PadShortcut(planes - cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """He et al. (2016) CIFAR ResNet with n = 3 (6n + 2 = 20 layers): 16/32/64 channels, option-A shortcuts.

    269 722 parameters for 10 classes (He et al. report 0.27M, Table 6).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, n: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        stages = []
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_BlockA(cin, planes, stride))
                cin = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.pool(out), 1))


class DigitsCNN(nn.Module):
    """Tiny CNN for 1×8×8 digits: Conv(c→8, 3, p1) ReLU Conv(8→16, 3, p1) ReLU MaxPool(2) Linear(16·(H/2)·(W/2)→classes)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, height: int = 8, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * (height // 2) * (width // 2), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------------------------- registry
def _image_shape(name: str, input_shape: tuple[int, ...], size: int | None = None, min_size: int = 1) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"model {name!r} needs an image input_shape (C, H, W), got input_shape={input_shape}")
    c, h, w = input_shape
    if size is not None and (h, w) != (size, size):
        raise ValueError(f"model {name!r} is defined for {size}x{size} images, got input_shape={input_shape}")
    if h < min_size or w < min_size:
        raise ValueError(f"model {name!r} needs images of at least {min_size}x{min_size}, got input_shape={input_shape}")
    return c, h, w


def _build_mlp(name: str, num_classes: int, input_shape: tuple[int, ...], hidden: Sequence[int] = (32,)) -> nn.Module:
    return MLP(math.prod(input_shape), hidden, num_classes)


def _build_cnn(name: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    c, h, w = _image_shape(name, input_shape, min_size=2)
    return DigitsCNN(num_classes, c, h, w)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fc5": lambda n, k, s: FC5(math.prod(s), k),
    "fc12": lambda n, k, s: FC12(math.prod(s), k),
    "mlpnet": lambda n, k, s: MLPNet(math.prod(s), k),
    "alexnet": lambda n, k, s: AlexNet(k, _image_shape(n, s, size=32)[0]),
    "vgg16": lambda n, k, s: VGG16(k, _image_shape(n, s, size=32)[0]),
    "resnet18": lambda n, k, s: ResNet18(k, _image_shape(n, s, min_size=8)[0]),
    "resnet50": lambda n, k, s: ResNet50(k, _image_shape(n, s, min_size=8)[0]),
    "resnet20": lambda n, k, s: ResNet20(k, _image_shape(n, s, min_size=4)[0]),
    "mlp": _build_mlp,
    "cnn": _build_cnn,
}

#: Names accepted by :func:`build_model` (case-insensitive).
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build a registered model and initialise it (Kaiming normal, see :func:`init_weights`).

    ``input_shape`` is the shape of one sample without the batch axis: ``(64,)`` or ``(1, 8, 8)`` for
    digits, ``(3, 32, 32)`` for CIFAR, ``(3, 64, 64)`` for TinyImageNet. Fully connected models flatten
    it; ``alexnet`` and ``vgg16`` need 32×32 images. ``kwargs`` go to the builder (only ``mlp`` takes one:
    ``hidden``, default ``(32,)``). The weights are drawn on the CPU from ``generator`` and then moved to
    ``device``/``dtype``; on the ``meta`` device nothing is allocated (use it to count parameters of big
    models).

    >>> from nets.params import count_parameters
    >>> count_parameters(build_model("fc5", 10, (3, 32, 32), device="meta"))
    3885010
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown model name={name!r}; choose one of {', '.join(MODEL_NAMES)}")
    check_int("num_classes", num_classes, minimum=2)
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError as exc:
        raise TypeError(f"input_shape must be a sequence of ints, got input_shape={input_shape!r}") from exc
    if len(shape) == 0 or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be non-empty with positive entries, got input_shape={input_shape!r}")
    if kwargs and key != "mlp":
        raise TypeError(f"model {name!r} takes no extra arguments, got {sorted(kwargs)}")
    meta = device is not None and torch.device(device).type == "meta"
    if meta:
        with torch.device("meta"):
            model = _BUILDERS[key](key, num_classes, shape, **kwargs)
        return model.to(dtype=dtype) if dtype is not None else model
    model = _BUILDERS[key](key, num_classes, shape, **kwargs)
    init_weights(model, generator)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
