"""Shapes and parameter counts of every model (docs/experiments.md §1.1), initialisation, registry errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nets.models import MODEL_NAMES, build_model, init_weights
from nets.params import count_parameters

# (name, classes, input shape, D all parameters, N prunable weights); D from docs/experiments.md §1.1 where quoted,
# ResNet20 = 269 722 (He et al. 2016: 0.27M), LeNet-300-100 on MNIST = 266 610.
COUNTS = [
    ("fc5", 10, (3, 32, 32), 3_885_010, 3_883_000),
    ("fc12", 10, (3, 32, 32), 7_269_610, None),
    ("alexnet", 10, (3, 32, 32), 46_787_978, None),
    ("vgg16", 10, (3, 32, 32), 14_728_266, None),
    ("resnet18", 100, (3, 32, 32), 11_220_132, None),
    ("resnet50", 100, (3, 32, 32), 23_705_252, None),
    ("resnet20", 10, (3, 32, 32), 269_722, None),
    ("mlpnet", 10, (1, 28, 28), 266_610, 266_200),
    ("mlp", 10, (64,), 64 * 32 + 32 + 32 * 10 + 10, 64 * 32 + 32 * 10),
    ("cnn", 10, (1, 8, 8), 80 + 1168 + 2570, None),
]


@pytest.mark.parametrize("name,k,shape,d,n", COUNTS)
def test_parameter_counts_on_meta(name, k, shape, d, n):
    m = build_model(name, k, shape, device="meta")
    assert count_parameters(m) == d
    if n is not None:
        assert count_parameters(m, prunable_only=True) == n


def test_every_registered_model_is_counted():
    assert {c[0] for c in COUNTS} == set(MODEL_NAMES)


@pytest.mark.parametrize(
    "name,k,shape",
    [("fc5", 10, (3, 32, 32)), ("resnet20", 10, (3, 32, 32)), ("mlpnet", 10, (1, 28, 28)), ("mlp", 10, (64,)),
     ("cnn", 10, (1, 8, 8)), ("vgg16", 10, (3, 32, 32)), ("resnet18", 200, (3, 64, 64))],
)
def test_forward_shapes(name, k, shape):
    m = build_model(name, k, shape, generator=torch.Generator().manual_seed(0))
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(2, *shape, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (2, k) and torch.isfinite(out).all()


def test_alexnet_forward_upsamples_to_224():
    # The feature map after the last pool must be 256x5x5 = 6400 (the first Linear's input).
    # Shapes are propagated on the meta device (no 46M-parameter allocation).
    m = build_model("alexnet", 10, (3, 32, 32), device="meta")
    x = nn.functional.interpolate(torch.zeros(1, 3, 32, 32, device="meta"), scale_factor=7, mode="nearest")
    assert x.shape[-1] == 224
    assert m.features(x).shape == (1, 256, 5, 5)
    assert m(torch.zeros(2, 3, 32, 32, device="meta")).shape == (2, 10)


def test_resnet50_tiny_forward():
    m = build_model("resnet50", 100, (3, 32, 32), generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_kaiming_init_statistics_and_zero_biases():
    # w ~ N(0, 2/fan_in): the sample variance of 1000*600 weights is within 4 standard errors of 2/1000
    # (variance of the sample variance of a Gaussian: 2σ⁴/n).
    m = build_model("fc5", 10, (3, 32, 32), generator=torch.Generator().manual_seed(0))
    w = m.net[3].weight.detach().double()  # Linear(1000, 600)
    var, n = 2.0 / 1000, w.numel()
    assert abs(float(w.var()) - var) < 4 * var * math.sqrt(2.0 / n)
    assert all(float(mod.bias.detach().abs().max()) == 0.0 for mod in m.modules() if isinstance(mod, nn.Linear))
    v = build_model("resnet20", 10, (3, 32, 32), generator=torch.Generator().manual_seed(0))
    for mod in v.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.equal(mod.weight, torch.ones_like(mod.weight))
            assert torch.equal(mod.bias, torch.zeros_like(mod.bias))


def test_init_is_reproducible_from_generator():
    a = build_model("mlp", 10, (64,), generator=torch.Generator().manual_seed(3))
    b = build_model("mlp", 10, (64,), generator=torch.Generator().manual_seed(3))
    c = build_model("mlp", 10, (64,), generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.net[1].weight, c.net[1].weight)
    assert init_weights(nn.Linear(2, 2)) is not None


def test_mlp_hidden_option_and_dtype():
    m = build_model("mlp", 3, (5,), hidden=(7, 4), dtype=torch.float64)
    assert count_parameters(m) == 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3
    assert next(m.parameters()).dtype == torch.float64


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        (("resnet9", 10, (3, 32, 32)), {}, ValueError, "unknown model name='resnet9'"),
        ((3, 10, (3, 32, 32)), {}, TypeError, "name must be a str"),
        (("fc5", 1, (3, 32, 32)), {}, ValueError, "num_classes must be an integer >= 2, got num_classes=1"),
        (("alexnet", 10, (3, 64, 64)), {}, ValueError, "defined for 32x32 images"),
        (("vgg16", 10, (3072,)), {}, ValueError, r"needs an image input_shape \(C, H, W\)"),
        (("resnet18", 10, (3, 4, 4)), {}, ValueError, "at least 8x8"),
        (("cnn", 10, (64,)), {}, ValueError, "needs an image input_shape"),
        (("fc5", 10, (3, 0, 32)), {}, ValueError, "positive entries"),
        (("fc5", 10, 5), {}, TypeError, "input_shape must be a sequence"),
        (("fc5", 10, (64,)), {"hidden": (3,)}, TypeError, "takes no extra arguments"),
        (("mlp", 10, (64,)), {"hidden": (0,)}, ValueError, "widths must be >= 1"),
    ],
)
def test_build_model_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        build_model(*args, **kwargs)
