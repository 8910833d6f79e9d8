import contextlib
import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skphys import DynamicsVAE
from skphys._training import TrainingDivergedError
from skphys.nn.dynamics_vae import (
    DynamicsEncoder,
    DynamicsVAEModule,
    PropagatingDecoder,
    dynamic_conv,
    dynamic_conv_unfold,
    inverse_variance_weighting,
    single_backward,
)

TINY = dict(
    encoder_crop=(31, 31), decoder_crop=20, rollout_steps=3, hidden_channels=4, batch_size=8, encoder_widths=(4, 8, 8, 8)
)


def advection(n, T=36, X=40, seed=0, velocity=None):
    """Exact periodic linear advection u_t + v u_x = 0 with a random velocity per trajectory
    (or the given one)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.8, 0.8, n) if velocity is None else np.full(n, float(velocity))
    k = 2 * np.pi * np.fft.rfftfreq(X)
    c = (rng.normal(size=(n, k.size)) + 1j * rng.normal(size=(n, k.size))) * np.exp(-(k**2) / 0.5)
    c[:, 0] = 0
    t = np.arange(T)[:, None]
    u = np.fft.irfft(c[:, None, :] * np.exp(-1j * k * v[:, None, None] * t[None]), n=X, axis=-1)
    u /= u[:, :1].std(axis=-1, keepdims=True)
    return u[..., None].astype(np.float32), v


# ----------------------------------------------------------------------------- modules


@pytest.mark.parametrize("space", [(23,), (9, 11)])
def test_dynamic_conv_equals_unfold_and_per_sample_conv(space):
    torch.manual_seed(0)
    B, cin, cout, k = 3, 2, 4, 5
    x = torch.randn(B, cin, *space, dtype=torch.float64)
    w = torch.randn(B, cout, cin, *([k] * len(space)), dtype=torch.float64)
    b = torch.randn(B, cout, dtype=torch.float64)
    fast = dynamic_conv(x, w, b)
    ref = dynamic_conv_unfold(x, w, b)
    conv = F.conv1d if len(space) == 1 else F.conv2d
    loop = torch.cat([conv(x[i : i + 1], w[i], b[i]) for i in range(B)])
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(fast, loop)


def test_inverse_variance_weighting_closed_form(rng):
    mu = rng.normal(size=(2, 3, 4, 5))
    logvar = rng.normal(size=(2, 3, 4, 5))
    logvar[0, :, 0, 0] = np.inf  # dropped positions are ignored
    mu_z, logvar_z = inverse_variance_weighting(torch.tensor(mu), torch.tensor(logvar), correction=7.0)
    prec = np.exp(-logvar).reshape(2, 3, -1)
    expect_mu = (prec * mu.reshape(2, 3, -1)).sum(-1) / prec.sum(-1)
    expect_var = 7.0 / prec.sum(-1)
    np.testing.assert_allclose(mu_z.numpy(), expect_mu, rtol=1e-5)
    np.testing.assert_allclose(np.exp(logvar_z.numpy()), expect_var, rtol=1e-5)


def test_encoder_receptive_field_and_correction():
    enc = DynamicsEncoder(1, 2, n_spatial_dims=1)
    assert enc.receptive_field == 31
    x = torch.zeros(1, 1, 40, 50, requires_grad=True)
    mu, _ = enc(x)
    assert mu.shape[2:] == (10, 20)
    mu[0, 0, 4, 7].backward()
    nz = torch.nonzero(x.grad[0, 0].abs() > 0)
    span = nz.max(0).values - nz.min(0).values + 1
    assert tuple(span.tolist()) <= (31, 31)
    m = DynamicsVAEModule(1)
    assert m.correction((34, 64)) == 31 * 31
    assert m.correction((10, 20), dropout=0.1) == pytest.approx(10 * 20 * 0.9)


@pytest.mark.parametrize("n_spatial_dims,activation,channels_last", [
    (1, "relu", True), (1, "leaky_relu", False), (2, "relu", False), (2, "leaky_relu", True),
])
def test_encoder_cpu_training_path_equals_the_plain_modules(n_spatial_dims, activation, channels_last):
    """The CPU training path (fused conv + activation with a split backward, heads as one GEMM)
    gives the plain modules' outputs and gradients: both within fp32 rounding of float64."""
    torch.manual_seed(0)
    enc = DynamicsEncoder(2, 3, n_spatial_dims, widths=(4, 6, 8, 8), dilations=(1, 2, 1, 2), activation=activation)
    with torch.no_grad():  # move the biases so that about half of the units are inactive
        for m in enc.features[0::2]:
            m.bias.normal_(0.0, 0.3)
    shape = (3, 2, 16, 17) if n_spatial_dims == 1 else (2, 2, 14, 15, 16)
    x = torch.randn(shape)
    if channels_last:
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    x.requires_grad_(True)
    w = torch.randn(2, 3, *([1] * (n_spatial_dims + 1)))

    def run(module, inp, plain):
        module.zero_grad()
        inp = inp.detach().requires_grad_(True)
        if plain:
            h = module.features(inp)
            mu, logvar = module.mu_head(h), module.logvar_head(h)
        else:
            mu, logvar = module(inp)
        loss = (mu * w[0].to(mu)).sum() + (logvar * w[1].to(mu)).exp().sum()
        loss.backward()
        return [mu.detach(), logvar.detach(), inp.grad] + [p.grad.clone() for p in module.parameters()]

    ref = run(copy.deepcopy(enc).double(), x.double(), plain=True)
    fast = run(enc, x, plain=False)
    plain = run(enc, x, plain=True)
    for r, f, p in zip(ref, fast, plain):
        tol = 10 * max(((p.double() - r).norm() / r.norm()).item(), 1e-6)
        assert ((f.double() - r).norm() / r.norm()).item() <= tol
    # no_grad (inference) takes the plain modules
    with torch.no_grad():
        mu, logvar = enc(x)
    torch.testing.assert_close(mu, fast[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logvar, fast[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("crop", [(32, 40), (40, 40)])  # 2 output frames: the frame pyramid; 10: whole layers
def test_single_backward_gives_the_same_gradients_and_refuses_a_second_backward(activation, crop):
    """Inside ``single_backward`` each layer's backward writes into its saved output: the
    gradients are bit for bit the same, the outputs are not touched before the backward, and a
    second backward through the graph raises instead of using the overwritten activations."""
    torch.manual_seed(0)
    enc = DynamicsEncoder(1, 3, 1, widths=(4, 6, 8, 8), activation=activation)
    x = torch.randn(3, 1, *crop)
    w = torch.randn(2, 3, 1, 1)

    def grads(single):
        enc.zero_grad()
        inp = x.clone().requires_grad_(True)
        with single_backward() if single else contextlib.nullcontext():
            mu, logvar = enc(inp)
        (mu * w[0]).sum().add((logvar * w[1]).exp().sum()).backward()
        return [mu.detach(), logvar.detach(), inp.grad] + [p.grad.clone() for p in enc.parameters()]

    for a, b in zip(grads(False), grads(True)):
        assert torch.equal(a, b)
    with single_backward():
        mu, _ = enc(x)
    loss = mu.square().sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()
    # the flag is restored on exit, also after an error, and nested uses keep the outer one
    with pytest.raises(KeyError), single_backward():
        raise KeyError
    with single_backward():
        with single_backward():
            pass
        mu, _ = enc(x)
    loss = mu.square().sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()
    mu, _ = enc(x)  # outside: a second backward works
    loss = mu.square().sum()
    loss.backward(retain_graph=True)
    loss.backward()


def test_frame_pyramid_plan():
    """The frames one output frame needs from each layer, and the strided layers that compute
    exactly those: for the paper's dilations, 31, 15, 7 and 3 frames 1, 2, 4 and 8 apart."""
    from skphys.nn.dynamics_vae import _frame_pyramid

    assert _frame_pyramid((1, 2, 4, 8), 3) == (((2, 1), (2, 1), (2, 1), (1, 1)), (31, 15, 7, 3, 1), 1)
    assert _frame_pyramid((1, 3, 9), 3) == (((3, 1), (3, 1), (1, 1)), (27, 9, 3, 1), 1)
    # every dilation even: only every other frame of the data window is read
    assert _frame_pyramid((2, 4), 3) == (((2, 1), (1, 1)), (7, 3, 1), 2)
    # (1, 5): the first layer's output is needed at frames 0-2, 5-7 and 10-12, not evenly spaced
    assert _frame_pyramid((1, 5), 3) is None


@pytest.mark.parametrize("n_spatial_dims,dilations", [(1, (1, 2, 4, 8)), (1, (2, 4)), (2, (1, 2, 4))])
def test_encoder_frame_pyramid_equals_the_whole_layers(n_spatial_dims, dilations):
    """Crops a few frames longer than the receptive field train through the frame pyramid (each
    output frame from its own window, strided layers): outputs and every gradient equal the plain
    modules' in float64; long crops keep the whole layers."""
    torch.manual_seed(0)
    enc = DynamicsEncoder(2, 3, n_spatial_dims, widths=(4, 6, 8, 8)[: len(dilations)], dilations=dilations).double()
    with torch.no_grad():
        for m in enc.features[0::2]:
            m.bias.normal_(0.0, 0.3)
    rf = enc.receptive_field
    shape = (3, 2, rf + 2, 33) if n_spatial_dims == 1 else (2, 2, rf + 1, 16, 17)
    x = torch.randn(shape, dtype=torch.float64)
    assert enc._pyramid_plan(x.shape) is not None
    assert enc._pyramid_plan((3, 2, 64, 33) if n_spatial_dims == 1 else (2, 2, 48, 16, 17)) is None
    w = torch.randn(2, 3, *([1] * (n_spatial_dims + 1)), dtype=torch.float64)

    def run(plain):
        enc.zero_grad()
        if plain:
            h = enc.features(x)
            mu, logvar = enc.mu_head(h), enc.logvar_head(h)
        else:
            mu, logvar = enc(x)
        ((mu * w[0]).sum() + (logvar * w[1]).exp().sum()).backward()
        return [mu.detach(), logvar.detach()] + [p.grad.clone() for p in enc.parameters()]

    for f, r in zip(run(plain=False), run(plain=True)):
        assert f.shape == r.shape
        torch.testing.assert_close(f, r, rtol=1e-12, atol=1e-12)


def test_encoder_under_cpu_autocast_takes_the_plain_modules():
    """Under a user's ``torch.autocast("cpu")`` the fused path (fp32 saved tensors) is not used,
    so training in bf16 still runs and matches the plain modules exactly."""
    torch.manual_seed(0)
    enc = DynamicsEncoder(1, 3, 1, widths=(4, 6, 8, 8), dilations=(1, 2, 1, 2))
    x = torch.randn(2, 1, 16, 17)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, logvar = enc(x)
        h = enc.features(x)
        ref = enc.mu_head(h)
    assert mu.dtype == torch.bfloat16
    torch.testing.assert_close(mu, ref, rtol=0, atol=0)
    (mu.float().sum() + logvar.float().sum()).backward()
    assert all(p.grad is not None for p in enc.parameters())


def _heat_kernels(C, h, r, scale, k=5):
    """Dynamic kernels realising f(y) = (r / scale) * (y[i-1] - 2 y[i] + y[i+1]): two identity
    layers (with a large bias so the ReLUs pass everything) and a Laplacian stencil."""
    ident1 = torch.zeros(1, h, C, k)
    ident1[0, 0, 0, k // 2] = 1.0
    ident2 = torch.zeros(1, h, h, k)
    ident2[0, 0, 0, k // 2] = 1.0
    lap = torch.zeros(1, C, h, k)
    lap[0, 0, 0, k // 2 - 1 : k // 2 + 2] = torch.tensor([1.0, -2.0, 1.0]) * r / scale
    big = torch.zeros(1, h)
    big[0, 0] = 100.0
    return [(ident1, big), (ident2, torch.zeros(1, h)), (lap, torch.zeros(1, C))]


@torch.no_grad()
def test_decoder_with_known_kernels_is_explicit_heat_step():
    """With a Laplacian kernel the decoder is the explicit FTCS heat scheme: a Fourier mode decays
    by exactly (1 - 4 r sin^2(k/2)) per step, periodic, Dirichlet and crop boundaries agree with
    the discrete scheme."""
    n, r, steps = 32, 0.2, 6
    dec = PropagatingDecoder(1, 2, hidden_channels=3, output_scale=1e-6)
    dec.cutoff.fill_(1e9)  # tanh in its linear range
    kern = _heat_kernels(1, 3, r, 1e-6)
    kern = [(w.double(), b.double()) for w, b in kern]
    dec.double()
    x = torch.arange(n, dtype=torch.float64)
    kw = 2 * np.pi * 3 / n
    y = torch.cos(kw * x).reshape(1, 1, n)
    out = y
    for _ in range(steps):
        out = dec.step(out, kern, "periodic")
    growth = (1 - 4 * r * np.sin(kw / 2) ** 2) ** steps
    torch.testing.assert_close(out, y * growth, atol=1e-9, rtol=0)

    # Dirichlet walls (value 0 outside): compare with the FTCS scheme on a zero-padded grid
    y0 = torch.rand(1, 1, n, dtype=torch.float64)
    ref = y0[0, 0].numpy().copy()
    pred = y0
    for _ in range(steps):
        pred = dec.step(pred, kern, "constant", fill_value=0.0)
        p = np.pad(ref, 1)
        ref = ref + r * (p[:-2] - 2 * ref + p[2:])
    np.testing.assert_allclose(pred[0, 0].numpy(), ref, atol=1e-9)

    # crop mode: a window of the periodic solution, padded with its true edges, is exact inside
    full = [y0]
    for _ in range(steps):
        full.append(dec.step(full[-1], kern, "periodic"))
    full = torch.stack(full, dim=2)  # (1, 1, steps + 1, n)
    window = full[..., 5:25]
    p = dec.pad
    pred = dec(window[:, :, 0, p:-p], torch.zeros(1, 2, dtype=torch.float64), steps, "crop", edges=window)
    pred_known = [window[:, :, 0, p:-p]]
    for t in range(steps):
        pred_known.append(dec.step(pred_known[-1], kern, "crop", edge_frame=window[:, :, t]))
    torch.testing.assert_close(torch.stack(pred_known[1:], 2), window[:, :, 1:, p:-p], atol=1e-9, rtol=0)
    assert pred.shape == (1, 1, steps, 20 - 2 * p)


@torch.no_grad()
def test_linear_term_alone_is_the_damped_wave_scheme():
    """With its nonlinear kernels zero, the decoder's linear term is one explicit step of the
    damped wave u_tt = c^2 u_xx - gamma u_t on (u, v = u_t): a Fourier mode of the discrete scheme
    evolves by its 2x2 amplification matrix, and the crop mode is exact inside a window."""
    n, steps, dt, c, gamma, lk = 32, 5, 0.1, 1.0, 0.3, 3
    dec = PropagatingDecoder(2, 2, hidden_channels=3, output_scale=1e-6, linear_kernel_size=lk).double()
    dec.cutoff.fill_(1e9)  # tanh in its linear range
    zero = [(torch.zeros(1, *layer.kernel_shape, dtype=torch.float64), torch.zeros(1, layer.out_channels, dtype=torch.float64))
            for layer in dec.layers]
    w = torch.zeros(1, 2, 2, lk, dtype=torch.float64)
    w[0, 0, 1, 1] = dt  # u += dt v
    w[0, 1, 0] = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64) * c**2 * dt  # v += dt (c^2 u_xx - gamma v)  (dx = 1)
    w[0, 1, 1, 1] = -gamma * dt
    kern = zero + [(w / 1e-6, None)]
    x = torch.arange(n, dtype=torch.float64)
    kw = 2 * np.pi * 3 / n
    y = torch.stack([torch.cos(kw * x), torch.zeros(n, dtype=torch.float64)]).reshape(1, 2, n)
    out = y
    for _ in range(steps):
        out = dec.step(out, kern, "periodic")
    lap = -4 * np.sin(kw / 2) ** 2
    A = np.array([[1.0, dt], [c**2 * dt * lap, 1 - gamma * dt]])
    amp = np.linalg.matrix_power(A, steps) @ np.array([1.0, 0.0])
    expected = torch.stack([amp[0] * torch.cos(kw * x), amp[1] * torch.cos(kw * x)]).reshape(1, 2, n)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    # the mode's energy decays: the scheme is the damped wave's, not a growing one
    assert abs(amp[1]) > 0 and np.hypot(*amp) < 1

    full = [torch.rand(1, 2, n, dtype=torch.float64)]
    for _ in range(steps):
        full.append(dec.step(full[-1], kern, "periodic"))
    window = torch.stack(full, dim=2)[..., 4:26]
    p = dec.pad
    pred = [window[:, :, 0, p:-p]]
    for t in range(steps):
        pred.append(dec.step(pred[-1], kern, "crop", edge_frame=window[:, :, t]))
    torch.testing.assert_close(torch.stack(pred[1:], 2), window[:, :, 1:, p:-p], atol=1e-12, rtol=0)


@torch.no_grad()
def test_linear_term_in_2d_is_the_explicit_heat_step():
    """In 2-D the linear term alone, with the 5-point Laplacian, is the FTCS heat scheme on a
    periodic grid (checked against numpy's rolled stencil)."""
    r, lk = 0.15, 3
    dec = PropagatingDecoder(1, 2, n_spatial_dims=2, hidden_channels=2, output_scale=1e-6, linear_kernel_size=lk).double()
    dec.cutoff.fill_(1e9)
    zero = [(torch.zeros(1, *layer.kernel_shape, dtype=torch.float64), torch.zeros(1, layer.out_channels, dtype=torch.float64))
            for layer in dec.layers]
    w = torch.zeros(1, 1, 1, lk, lk, dtype=torch.float64)
    w[0, 0, 0, 1] = torch.tensor([1.0, -4.0, 1.0], dtype=torch.float64) * r
    w[0, 0, 0, 0, 1] = w[0, 0, 0, 2, 1] = r
    y0 = torch.rand(1, 1, 12, 10, dtype=torch.float64)
    out = dec.step(y0, zero + [(w / 1e-6, None)], "periodic")
    u = y0[0, 0].numpy()
    lap = np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1) - 4 * u
    np.testing.assert_allclose(out[0, 0].numpy(), u + r * lap, atol=1e-12)


def test_linear_term_is_absent_by_default_and_checked():
    torch.manual_seed(0)
    a = PropagatingDecoder(1, 2, hidden_channels=3)
    torch.manual_seed(0)
    b = PropagatingDecoder(1, 2, hidden_channels=3, linear_kernel_size=5)
    assert a.linear is None and len(a.kernels(torch.zeros(1, 2))) == 3
    # the nonlinear layers are drawn first, so they are the same with or without the linear term
    for pa, pb in zip(a.layers.parameters(), b.layers.parameters()):
        torch.testing.assert_close(pa, pb)
    w, bias = b.kernels(torch.zeros(4, 2))[-1]
    assert w.shape == (4, 1, 1, 5) and bias is None
    for bad in (2, 15, -1):
        with pytest.raises(ValueError, match="linear_kernel_size must be 0 or odd and at most 13"):
            PropagatingDecoder(1, 2, linear_kernel_size=bad)


def test_cutoff_bounds_the_update():
    dec = PropagatingDecoder(1, 2, hidden_channels=3, output_scale=1e-6)
    with torch.no_grad():
        dec.cutoff.fill_(0.01)
    kern = _heat_kernels(1, 3, 1e9, 1e-6)  # a huge update
    y = torch.randn(1, 1, 16)
    out = dec.step(y, kern, "periodic")
    assert (out - y).abs().max() <= 0.01 + 1e-6


# ----------------------------------------------------------------------------- estimator


@pytest.fixture(scope="module")
def fitted():
    X, v = advection(12)
    vae = DynamicsVAE(**TINY, max_epochs=2, random_state=0, output_scale=1e-2, device="cpu").fit(X)
    return vae, X, v


def test_fit_attributes_and_transform_any_size(fitted):
    vae, X, _ = fitted
    assert vae.n_spatial_dims_ == 1 and vae.n_channels_ == 1
    assert len(vae.history_) == 2 and {"loss", "mse", "kl"} <= set(vae.history_[0])
    assert set(vae.latent_stats_) == {"mu_variance", "mean_sigma2", "direction_snr"}
    assert vae.latent_stats_["mu_variance"].shape == (5,)
    mu, sigma = vae.transform(X, return_std=True)
    assert mu.shape == sigma.shape == (12, 5) and (sigma > 0).all()
    # any length and size at least the receptive field, including larger than in training
    assert vae.transform(X[:3, :31, :31]).shape == (3, 5)
    big = np.tile(X[:2], (1, 2, 3, 1))
    assert vae.transform(big).shape == (2, 5)
    with pytest.raises(ValueError, match="at least 31"):
        vae.transform(X[:, :20])
    with pytest.raises(ValueError, match=r"spatial size .* at least"):
        vae.transform(X[:, :, :25])
    pred = vae.predict(X[:, 0], 7, context=X)
    assert pred.shape == (12, 7, 40, 1)
    np.testing.assert_allclose(pred, vae.predict(X[:, 0], 7, latents=vae.transform(X)), atol=1e-6)
    assert np.isfinite(vae.score(X))


def test_training_lowers_the_rollout_error():
    """One common velocity: the decoder alone can learn the advection step, so 20 epochs must
    cut the deterministic rollout error (score) well below the 1-epoch model's."""
    X, _ = advection(16, seed=1, velocity=0.5)
    params = dict(TINY, output_scale=1e-2, lr=1e-2, random_state=0, device="cpu")
    short = DynamicsVAE(**params, max_epochs=1).fit(X)
    longer = DynamicsVAE(**params, max_epochs=20).fit(X)
    assert np.mean([h["mse"] for h in longer.history_[-4:]]) < 0.6 * longer.history_[0]["mse"]
    assert longer.score(X) > 0.6 * short.score(X)  # scores are negative MSEs


def test_kl_warmup_ramps_the_kl_weight_and_the_noise():
    """KL annealing: the KL weight rises per step as beta * (step + 1) / (warmup_steps + 1) and
    the decoder's latents are the noiseless means at the start of the ramp."""
    X, _ = advection(8)
    beta = 0.5
    params = dict(TINY, beta=beta, batch_size=4, random_state=0, device="cpu")  # 2 steps per epoch
    vae = DynamicsVAE(**params, max_epochs=3, kl_warmup_epochs=2).fit(X)  # 4 warm-up steps
    weights = [h["kl_weight"] for h in vae.history_]
    np.testing.assert_allclose(weights, [beta * 0.3, beta * 0.7, beta], rtol=1e-6)  # (1+2)/10, (3+4)/10
    plain = DynamicsVAE(**params, max_epochs=2).fit(X)
    assert [h["kl_weight"] for h in plain.history_] == [beta, beta]
    # noise_scale multiplies the reparameterisation noise: 0 gives the deterministic forward
    torch.manual_seed(0)
    module = DynamicsVAEModule(1, hidden_channels=4, output_scale=1.0, encoder_widths=(4, 8, 8, 8)).eval()
    x = torch.from_numpy(X[:2]).movedim(-1, 1)
    torch.manual_seed(0)
    noiseless = module(x[:, :, :32], x[:, :, :4, :20], 3, noise_scale=0.0, sample=True)[0]
    torch.manual_seed(0)
    deterministic = module(x[:, :, :32], x[:, :, :4, :20], 3, sample=False)[0]
    torch.manual_seed(0)
    noisy = module(x[:, :, :32], x[:, :, :4, :20], 3, noise_scale=1.0, sample=True)[0]
    torch.testing.assert_close(noiseless, deterministic)
    assert not torch.allclose(noisy, deterministic)


def test_cosine_lr_schedule_decays_the_learning_rate():
    """lr_schedule='cosine': the LR recorded after each epoch follows lr * (1 + cos(pi s / S)) / 2
    at the epoch's last step s of S; 'constant' keeps lr; anything else is refused."""
    X, _ = advection(8)
    params = dict(TINY, batch_size=4, lr=1e-2, random_state=0, device="cpu")  # 2 steps per epoch
    vae = DynamicsVAE(**params, max_epochs=4, lr_schedule="cosine").fit(X)
    expected = [1e-2 * 0.5 * (1 + np.cos(np.pi * s / 8)) for s in (2, 4, 6, 8)]
    np.testing.assert_allclose([h["lr"] for h in vae.history_], expected, atol=1e-12)
    constant = DynamicsVAE(**params, max_epochs=2).fit(X)
    assert [h["lr"] for h in constant.history_] == [1e-2, 1e-2]
    with pytest.raises(ValueError, match="lr_schedule"):
        DynamicsVAE(**params, max_epochs=1, lr_schedule="linear").fit(X)


def test_kl_warmup_longer_than_training_warns():
    X, _ = advection(4)
    with pytest.warns(UserWarning, match=r"kl_warmup_epochs=4 > max_epochs=2; .* about 0.5 of beta"):
        DynamicsVAE(**TINY, max_epochs=2, kl_warmup_epochs=4, random_state=0, device="cpu").fit(X)


def test_init_latent_std_scales_the_initial_posterior_width():
    """Shifting the log-variance head's bias by 2 log(s) multiplies every initial sigma_z by s
    exactly (inverse-variance weighting is equivariant to a common shift); the means are the same."""
    x = torch.randn(3, 1, 31, 40)
    out = {}
    for s in (1.0, 0.05):
        torch.manual_seed(0)
        module = DynamicsVAEModule(1, init_latent_std=s).eval()
        with torch.no_grad():
            out[s] = module.encode(x)
    torch.testing.assert_close(out[0.05][0], out[1.0][0])
    torch.testing.assert_close(torch.exp(0.5 * out[0.05][1]), 0.05 * torch.exp(0.5 * out[1.0][1]))
    # in training crops the default starts at about the prior's width
    assert 0.3 < float(torch.exp(0.5 * out[1.0][1]).median()) < 3.0
    X, _ = advection(4)
    with pytest.raises(ValueError, match="init_latent_std"):
        DynamicsVAE(**TINY, init_latent_std=0.0, max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        DynamicsVAE(**TINY, kl_warmup_epochs=-1, max_epochs=1).fit(X)


def test_random_state_reproducible_and_pickle(fitted):
    vae, X, _ = fitted
    again = clone(vae).fit(X)
    np.testing.assert_allclose(vae.transform(X), again.transform(X), rtol=1e-5, atol=1e-6)
    loaded = pickle.loads(pickle.dumps(vae))
    assert next(loaded.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.transform(X), vae.transform(X), rtol=1e-6)
    np.testing.assert_allclose(loaded.predict(X[:2, 0], 3, context=X[:2]), vae.predict(X[:2, 0], 3, context=X[:2]))


def test_two_d_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 32, 32, 31, 2)).astype(np.float32)
    vae = DynamicsVAE(
        encoder_crop=(31, 31, 31), decoder_crop=(16, 16), rollout_steps=2, hidden_channels=2,
        kernel_hidden_factor=1, encoder_widths=(2, 4, 4, 4), max_epochs=1, batch_size=2, random_state=0, device="cpu",
    ).fit(X)
    assert vae.n_spatial_dims_ == 2 and vae.beta_ == 1e-4
    assert vae.transform(X).shape == (2, 5)
    assert vae.predict(X[:, 0], 2, latents=np.zeros((2, 5))).shape == (2, 2, 32, 31, 2)


def test_encoder_dilations_shrink_the_receptive_field():
    X, _ = advection(6)
    params = dict(TINY, encoder_crop=(17, 17), max_epochs=1, random_state=0, device="cpu")
    vae = DynamicsVAE(**params, encoder_dilations=(1, 1, 2, 4)).fit(X)
    assert vae.encoder_dilations == (1, 1, 2, 4)  # stored as given
    assert [m.dilation[0] for m in vae.module_.encoder.features if hasattr(m, "dilation")] == [1, 1, 2, 4]
    assert vae.module_.encoder.receptive_field == 17
    assert vae.transform(X[:, :17, :17]).shape == (6, 5)
    with pytest.raises(ValueError, match="at least 17"):
        vae.transform(X[:, :16])
    again = DynamicsVAE(**params, encoder_dilations=[1, 1, 2, 4]).fit(X)
    np.testing.assert_allclose(vae.transform(X), again.transform(X), rtol=1e-5, atol=1e-6)
    # the default keeps the paper's encoder (receptive field 31)
    with pytest.raises(ValueError, match="at least 31"):
        DynamicsVAE(**params).fit(X)
    with pytest.raises(ValueError, match="at least 21"):
        DynamicsVAE(**params, encoder_dilations=(1, 2, 3, 4)).fit(X)
    with pytest.raises(ValueError, match="encoder_dilations must be 4 positive integers"):
        DynamicsVAE(**params, encoder_dilations=(1, 2, 4)).fit(X)
    with pytest.raises(ValueError, match="encoder_dilations must be 4 positive integers"):
        DynamicsVAE(**params, encoder_dilations=(0, 1, 2, 4)).fit(X)
    with pytest.raises(ValueError, match="encoder_widths has 3 entries"):
        DynamicsVAE(**dict(params, encoder_widths=(4, 8, 8))).fit(X)
    three = DynamicsVAE(**dict(params, encoder_widths=(4, 8, 8)), encoder_dilations=(1, 2, 5)).fit(X)
    assert three.module_.encoder.receptive_field == 17


def test_leaky_encoder_keeps_gradients_where_relu_units_are_dead():
    """The failure encoder_activation="leaky_relu" exists for: once every pre-activation of a
    layer is negative, a ReLU encoder gets no gradient at all and its latents stay constant."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 17, 17)
    for activation, alive in (("relu", False), ("leaky_relu", True)):
        enc = DynamicsEncoder(1, 3, 1, widths=(4, 4, 4, 4), dilations=(1, 1, 2, 4), activation=activation)
        with torch.no_grad():
            enc.features[4].bias.fill_(-100.0)  # third layer: every unit off
        mu, logvar = enc(x)
        (mu.sum() + logvar.sum()).backward()
        grad = enc.features[0].weight.grad.abs().sum().item()
        assert (grad > 0) is alive, (activation, grad)
        inputs_matter = not torch.allclose(enc(x)[0], enc(torch.randn_like(x))[0])
        assert inputs_matter is alive
    X, _ = advection(6)
    params = dict(TINY, encoder_crop=(17, 17), encoder_dilations=(1, 1, 2, 4), max_epochs=1, random_state=0, device="cpu")
    vae = DynamicsVAE(**params, encoder_activation="leaky_relu").fit(X)
    acts = [m for m in vae.module_.encoder.features if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 4 and acts[0].negative_slope == 0.1
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in DynamicsVAE(**params).fit(X).module_.encoder.features)
    with pytest.raises(ValueError, match="encoder_activation"):
        DynamicsVAE(**params, encoder_activation="tanh").fit(X)
    with pytest.raises(ValueError, match="activation must be one of"):
        DynamicsEncoder(1, 3, activation="tanh")


def test_sklearn_integration():
    X, _ = advection(8)
    vae = DynamicsVAE(**TINY, max_epochs=1, random_state=0, device="cpu")
    scores = cross_val_score(vae, X, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    pipe = make_pipeline(DynamicsVAE(**TINY, max_epochs=1, random_state=0, device="cpu"))
    assert pipe.fit(X).transform(X).shape == (8, 5)
    tags = vae.__sklearn_tags__()
    assert tags.target_tags.required is False and tags.input_tags.three_d_array


def test_input_errors():
    X, _ = advection(4)
    with pytest.raises(ValueError, match="NaN"):
        bad = X.copy()
        bad[0, 3, 4, 0] = np.nan
        DynamicsVAE(**TINY, max_epochs=1).fit(bad)
    with pytest.raises(ValueError, match=r"at least 40 frames"):
        DynamicsVAE(**{**TINY, "encoder_crop": (40, 31)}, max_epochs=1).fit(X)
    with pytest.raises(ValueError, match=r"spatial size \(50,\)"):
        DynamicsVAE(**{**TINY, "decoder_crop": 50}, max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="receptive field"):
        DynamicsVAE(encoder_crop=(20, 31), max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="dimensions"):
        DynamicsVAE(**TINY, max_epochs=1).fit(X[..., 0])
    with pytest.raises(ValueError, match="boundary"):
        DynamicsVAE(**TINY, boundary="reflect", max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="padding"):
        DynamicsVAE(**{**TINY, "decoder_crop": 12}, max_epochs=1).fit(X)


def test_predict_errors(fitted):
    vae, X, _ = fitted
    with pytest.raises(ValueError, match="exactly one"):
        vae.predict(X[:, 0], 3)
    with pytest.raises(ValueError, match="initial states"):
        vae.predict(X, 3, context=X)
    with pytest.raises(ValueError, match="crop"):
        vae.predict(X[:, 0], 3, context=X, boundary="crop")
    with pytest.raises(ValueError, match="n_steps"):
        vae.predict(X[:, 0], 0, context=X)
    with pytest.raises(ValueError, match="latents must have shape"):
        vae.predict(X[:, 0], 3, latents=np.zeros((2, 5)))


def test_divergence_raises_with_epoch():
    X, _ = advection(4)
    X = X * 1e25  # squared errors overflow float32
    with pytest.raises(TrainingDivergedError, match="epoch 0"):
        DynamicsVAE(**TINY, max_epochs=2, random_state=0, device="cpu").fit(X)


def test_transform_bounds_the_batch_by_grid_points(fitted, monkeypatch):
    """Whole trajectories far larger than the training crops are encoded a few at a time (at
    most 4x a training batch's grid points per call), with the same latents as one at a time."""
    vae, X, _ = fitted
    big = np.tile(X, (1, 2, 4, 1))  # 72 x 160 points, ~12x a 31 x 31 crop
    sizes = []
    encode = vae.module_.encode

    def recording_encode(x, *args, **kwargs):
        sizes.append(x.shape[0])
        return encode(x, *args, **kwargs)

    monkeypatch.setattr(vae.module_, "encode", recording_encode)
    mu, sigma = vae.transform(big, return_std=True)
    budget = 4 * vae.batch_size * 31 * 31
    assert max(sizes) == budget // (72 * 160) < vae.batch_size and sum(sizes) == len(big)
    sizes.clear()
    assert vae.transform(X).shape == (12, 5) and sizes == [8, 4]  # small grids: batch_size rows
    one = np.concatenate([vae.transform(big[i : i + 1], return_std=True)[1] for i in range(3)])
    np.testing.assert_allclose(sigma[:3], one, rtol=1e-5, atol=1e-7)


def test_warm_start_continues_exactly_as_one_longer_fit():
    """fit(2 epochs) + pickle + warm fit(3 epochs) on the CPU is bit-for-bit fit(5 epochs):
    weights, AdamW moments, both random streams and the KL ramp all continue."""
    X, _ = advection(12)
    kw = dict(TINY, random_state=0, device="cpu", output_scale=1e-2, kl_warmup_epochs=3)
    one = DynamicsVAE(**kw, max_epochs=5).fit(X)
    with pytest.warns(UserWarning, match="kl_warmup_epochs=3 > max_epochs=2"):
        part = DynamicsVAE(**kw, max_epochs=2).fit(X)
    part = pickle.loads(pickle.dumps(part))
    part.set_params(warm_start=True, max_epochs=3).fit(X)
    assert [h["epoch"] for h in part.history_] == [0, 1, 2, 3, 4]
    assert [h["loss"] for h in part.history_] == [h["loss"] for h in one.history_]
    assert [h["kl_weight"] for h in part.history_] == [h["kl_weight"] for h in one.history_]
    np.testing.assert_array_equal(part.transform(X), one.transform(X))
    # without warm_start a refit starts again
    part.set_params(warm_start=False, max_epochs=2)
    with pytest.warns(UserWarning, match="kl_warmup"):
        part.fit(X)
    assert len(part.history_) == 2 and part.history_[0]["loss"] == one.history_[0]["loss"]


def test_warm_start_refuses_a_changed_architecture_or_data_layout():
    X, _ = advection(6)
    vae = DynamicsVAE(**TINY, max_epochs=1, random_state=0, device="cpu").fit(X)
    vae.set_params(warm_start=True, lr=1e-4, rollout_steps=2)  # allowed: not the architecture
    vae.fit(X)
    assert len(vae.history_) == 2
    with pytest.raises(ValueError, match=r"n_latents 5 -> 4 changed since the last fit"):
        vae.set_params(n_latents=4).fit(X)
    vae.set_params(n_latents=5)
    with pytest.raises(ValueError, match=r"n_channels 1 -> 2"):
        vae.fit(np.concatenate([X, X], axis=-1))
    del vae._optimizer_state  # as in a model pickled before warm starts existed
    with pytest.raises(ValueError, match="carries no training state"):
        vae.fit(X)


def test_linear_kernel_size_fits_predicts_and_is_part_of_the_architecture():
    X, _ = advection(6)
    vae = DynamicsVAE(**TINY, linear_kernel_size=3, max_epochs=1, random_state=0, device="cpu").fit(X)
    assert vae.module_.decoder.linear is not None
    assert vae.predict(X[:, 0], n_steps=2, context=X).shape == (6, 2) + X.shape[2:]
    # reproducible, and different from the model without the linear term
    again = DynamicsVAE(**TINY, linear_kernel_size=3, max_epochs=1, random_state=0, device="cpu").fit(X)
    np.testing.assert_array_equal(vae.transform(X), again.transform(X))
    with pytest.raises(ValueError, match=r"linear_kernel_size 3 -> 0 changed since the last fit"):
        vae.set_params(warm_start=True, linear_kernel_size=0).fit(X)
    # a model fitted before the parameter existed had no linear term: a warm start keeps working
    plain = DynamicsVAE(**TINY, max_epochs=1, random_state=0, device="cpu").fit(X)
    del plain._fit_architecture["linear_kernel_size"]
    plain.set_params(warm_start=True).fit(X)
    assert len(plain.history_) == 2
    pad = 3 * (TINY.get("kernel_size", 5) // 2)
    for bad in (2, 2 * pad + 3):
        with pytest.raises(ValueError, match="linear_kernel_size must be 0 or odd"):
            DynamicsVAE(**TINY, linear_kernel_size=bad, max_epochs=1, device="cpu").fit(X)
    with pytest.raises(ValueError, match="linear_kernel_size"):
        DynamicsVAE(**TINY, linear_kernel_size=-1, max_epochs=1, device="cpu").fit(X)


def test_interrupted_fit_finishes_with_the_model_trained_so_far(monkeypatch):
    """A KeyboardInterrupt in the third epoch stops training; fit still computes the fitted
    attributes from the model as trained, so transform and predict work."""
    import skphys.nn.dynamics_vae as nn_vae

    X, _ = advection(8)
    forward = nn_vae.DynamicsVAEModule.forward
    calls = []

    def interrupting_forward(self, *args, **kwargs):
        if self.training:
            calls.append(1)
            if len(calls) == 5:  # batch_size 4: two steps per epoch; this is epoch 2's first
                raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(nn_vae.DynamicsVAEModule, "forward", interrupting_forward)
    with pytest.warns(RuntimeWarning, match="during epoch 2"):
        vae = DynamicsVAE(**dict(TINY, batch_size=4), max_epochs=50, random_state=0, device="cpu").fit(X)
    assert len(vae.history_) == 2 and len(calls) == 5
    assert vae.transform(X).shape == (8, 5)
    assert vae.latent_stats_["mu_variance"].shape == (5,)
    assert vae.predict(X[:, 0], 3, context=X).shape == (8, 3, 40, 1)


@pytest.mark.slow
def test_finds_the_relevant_latent_of_advection():
    """Trajectories differ only by their advection velocity: after a short training the most
    relevant latent (largest var(mu) / mean(sigma^2), above 1) is linear in the velocity.

    The exact number of relevant latents at this tiny budget depends on the random streams: the
    previous engine's gave exactly 1 for 4 of 6 seeds, this engine's per-step streams 0 of 5 (2-3
    latents, or none for seed 2). That is issue 15's subject (identification that is robust at
    default settings); this test pins that the most relevant latent is the velocity."""
    from skphys.metrics import latent_r2

    X, v = advection(32, seed=3)
    vae = DynamicsVAE(
        **{**TINY, "batch_size": 16, "rollout_steps": 6, "decoder_crop": 24},
        max_epochs=150, output_scale=1e-2, lr=3e-3, random_state=0, device="cpu",
    ).fit(X)
    assert 1 <= len(vae.relevant_latents_) <= 3
    mu = vae.transform(X)
    assert latent_r2(mu[:, vae.relevant_latents_[:1]], v)[0, 0] > 0.9
