"""Every depthwise formulation computes F.conv3d's function exactly (values and gradients)."""


import pytest
import torch
import torch.nn.functional as F

from skphys.nn.depthwise import IMPLS, DepthwiseConv3d, _auto_impl, depthwise_conv3d, next_fast_len


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 shared cores are oversubscribed; 1 thread is much faster here
    yield
    torch.set_num_threads(n)


SHAPES = [
    ((2, 3, 5, 9, 8), (7, 7, 7)),  # T smaller than the kernel
    ((2, 3, 1, 6, 6), (7, 7, 7)),  # a single frame: only the centre time tap acts
    ((1, 2, 16, 10, 1), (7, 7, 1)),  # 1-D systems: width-1 kernels along W
    ((2, 3, 4, 4, 4), (3, 5, 7)),  # anisotropic kernel
    ((1, 2, 1, 12, 12), (1, 7, 7)),  # the 2-D kernel of the last stage
]


def _reference(x, w, b):
    return F.conv3d(x, w, b, padding=tuple(k // 2 for k in w.shape[2:]), groups=x.shape[1])


@pytest.mark.parametrize("impl", ["conv3d", "conv2d", "fft"])
@pytest.mark.parametrize("shape,ks", SHAPES)
def test_matches_conv3d_values_and_gradients(impl, shape, ks):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(shape[1], 1, *ks, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(shape[1], dtype=torch.float64, generator=g, requires_grad=True)
    ref = _reference(x, w, b)
    out = depthwise_conv3d(x, w, b, impl)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn(ref.shape, dtype=torch.float64, generator=g)
    gref = torch.autograd.grad(ref, (x, w, b), grad_out)
    gout = torch.autograd.grad(out, (x, w, b), grad_out)
    for a, r in zip(gout, gref):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", ["conv2d", "fft"])
def test_float32_close_to_conv3d(impl):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 16, 16, generator=g)
    w = torch.randn(4, 1, 7, 7, 7, generator=g) * 0.05
    torch.testing.assert_close(depthwise_conv3d(x, w, None, impl), _reference(x, w, None), rtol=1e-4, atol=1e-5)


def test_impulse_response_is_the_kernel():
    """A unit impulse in the middle of the box returns the (mirrored) kernel, with zeros elsewhere."""
    w = torch.randn(1, 1, 7, 7, 7, dtype=torch.float64)
    x = torch.zeros(1, 1, 11, 11, 11, dtype=torch.float64)
    x[0, 0, 5, 5, 5] = 1.0
    for impl in ("conv2d", "fft"):
        y = depthwise_conv3d(x, w, None, impl)[0, 0]
        torch.testing.assert_close(y[2:9, 2:9, 2:9], w[0, 0].flip((0, 1, 2)), rtol=0, atol=1e-12)
        mask = torch.ones_like(y, dtype=torch.bool)
        mask[2:9, 2:9, 2:9] = False
        assert y[mask].abs().max() < 1e-12


def test_module_equals_nn_conv3d():
    torch.manual_seed(0)
    ref = torch.nn.Conv3d(5, 5, 7, padding="same", groups=5)
    x = torch.randn(2, 5, 6, 10, 10)
    for impl in ("auto", "conv3d", "conv2d", "fft"):
        m = DepthwiseConv3d(5, 7, impl=impl)
        m.load_state_dict(ref.state_dict())
        torch.testing.assert_close(m(x), ref(x), rtol=1e-4, atol=1e-5)
    assert dict(DepthwiseConv3d(5, 7).named_parameters()).keys() == dict(ref.named_parameters()).keys()


def test_auto_choice_on_cpu():
    x = torch.randn(1, 2, 4, 8, 8)
    w = torch.randn(2, 1, 7, 7, 7, requires_grad=True)
    assert _auto_impl(x, w) == "fft"  # training: the FFT's backward is far faster on CPU
    with torch.no_grad():
        assert _auto_impl(x, w) == "conv3d"


def test_next_fast_len():
    for n in range(1, 300):
        m = next_fast_len(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
        assert all(next_fast_len(k) != k for k in range(n, m))  # nothing smaller in between


def test_errors():
    x = torch.randn(1, 2, 4, 8, 8)
    with pytest.raises(ValueError, match="N, C, T, H, W"):
        depthwise_conv3d(x[0], torch.randn(2, 1, 7, 7, 7))
    with pytest.raises(ValueError, match="odd"):
        depthwise_conv3d(x, torch.randn(2, 1, 6, 7, 7))
    with pytest.raises(ValueError, match="C=2"):
        depthwise_conv3d(x, torch.randn(3, 1, 7, 7, 7))
    with pytest.raises(ValueError, match="impl must be one of"):
        depthwise_conv3d(x, torch.randn(2, 1, 7, 7, 7), impl="winograd")
    with pytest.raises(ValueError, match="impl must be one of"):
        DepthwiseConv3d(2, impl="nope")
    assert set(IMPLS) == {"auto", "conv3d", "conv2d", "fft"}
