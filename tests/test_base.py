import pickle

import numpy as np
import pytest
import torch

from skphys._base import TorchEstimatorMixin, check_trajectories, iter_batches, resolve_device
from skphys._training import TrainingDivergedError, cosine_lr, train


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("gpu0")
    with pytest.raises(TypeError):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_check_trajectories_errors():
    X = np.zeros((2, 8, 16, 16, 3))
    assert check_trajectories(X).dtype == np.float32
    with pytest.raises(ValueError, match="dimensions"):
        check_trajectories(np.zeros((2, 8, 3)))
    with pytest.raises(ValueError, match="at least 10"):
        check_trajectories(X, min_frames=10)
    with pytest.raises(ValueError, match="spatial size"):
        check_trajectories(X, min_space=32)
    with pytest.raises(ValueError, match="channels"):
        check_trajectories(X, n_channels=4)
    Xn = X.copy()
    Xn[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_trajectories(Xn)
    with pytest.raises(TypeError, match="real"):
        check_trajectories(X.astype(complex))
    with pytest.raises(TypeError, match="numeric"):
        check_trajectories(np.array([["a"]]))


def test_iter_batches_covers_all():
    X = np.arange(10 * 2 * 3 * 1, dtype=np.float32).reshape(10, 2, 3, 1)
    out = np.concatenate([b for _, b in iter_batches(X, 4)])
    np.testing.assert_array_equal(out, X)


def test_cosine_lr_shape():
    assert cosine_lr(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_lr(10, 100, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, warmup_steps=10, final_ratio=0.01) == pytest.approx(0.01)


def test_train_fits_linear_regression_and_detects_divergence():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    w_true = torch.tensor([[1.0], [-2.0], [0.5]])
    y = x @ w_true
    model = torch.nn.Linear(3, 1, bias=False)

    def batches(epoch):
        for i in range(0, 256, 32):
            yield x[i : i + 32], y[i : i + 32]

    def loss_fn(batch):
        xb, yb = batch
        return torch.mean((model(xb) - yb) ** 2), {}

    hist = train(model.parameters(), loss_fn, batches, max_epochs=60, steps_per_epoch=8, lr=0.05)
    assert hist[-1]["loss"] < 1e-3 < hist[0]["loss"]
    torch.testing.assert_close(model.weight.data.T, w_true, atol=2e-2, rtol=0)

    def bad_loss(batch):
        return model(batch[0]).sum() * float("nan"), {}

    with pytest.raises(TrainingDivergedError, match="epoch 0"):
        train(model.parameters(), bad_loss, batches, max_epochs=2, steps_per_epoch=8, lr=0.1)


def test_train_stops_on_keyboard_interrupt_and_keeps_the_trained_parameters():
    """Ctrl-C (or SIGINT from a time limit) ends training like skorch: a warning, the completed
    epochs in the history, and the parameters as the last finished step left them."""
    torch.manual_seed(0)
    x = torch.randn(64, 2)
    y = x @ torch.tensor([[2.0], [-1.0]])
    model = torch.nn.Linear(2, 1, bias=False)
    w0 = model.weight.detach().clone()
    calls = []

    def batches(epoch):
        for i in range(0, 64, 16):
            yield x[i : i + 16], y[i : i + 16]

    def loss_fn(batch):
        calls.append(1)
        if len(calls) == 11:  # third step of epoch 2
            raise KeyboardInterrupt
        return torch.mean((model(batch[0]) - batch[1]) ** 2), {}

    with pytest.warns(RuntimeWarning, match=r"interrupted .* during epoch 2; .* 2 completed epoch"):
        hist = train(model.parameters(), loss_fn, batches, max_epochs=50, steps_per_epoch=4, lr=0.05)
    assert [h["epoch"] for h in hist] == [0, 1]
    assert len(calls) == 11
    assert not torch.equal(model.weight, w0)  # the 10 finished steps are kept


class _Holder(TorchEstimatorMixin):
    def __init__(self):
        self.device = "cpu"
        self.module_ = torch.nn.Linear(2, 2)


def test_pickle_keeps_module():
    h = _Holder()
    h2 = pickle.loads(pickle.dumps(h))
    torch.testing.assert_close(h2.module_.weight, h.module_.weight)
    assert next(h2.module_.parameters()).device.type == "cpu"


class _Lazy:
    """Minimal lazy array-like: counts rows read."""

    def __init__(self, a):
        self.a, self.rows_read = a, 0
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __len__(self):
        return len(self.a)

    def __getitem__(self, idx):
        out = self.a[idx]
        self.rows_read += len(out) if out.ndim == self.a.ndim else 1
        return out


def test_channel_stats_streams_and_keeps_precision():
    from skphys._base import channel_stats

    rng = np.random.default_rng(0)
    X = (1e4 + rng.standard_normal((7, 5, 6, 2))).astype(np.float32)
    X[..., 1] = 3.0  # constant channel -> scale 1
    mean, scale = channel_stats(_Lazy(X), batch_size=2)
    ref = X.astype(np.float64).reshape(-1, 2)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scale[0], ref[:, 0].std(), rtol=1e-9)
    assert scale[1] == 1.0
    Xn = X.copy()
    Xn[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        channel_stats(_Lazy(Xn), batch_size=2)


def test_window_sampler_same_windows_in_memory_and_lazy():
    from skphys._sampling import WindowSampler

    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 12, 5, 3)).astype(np.float32)
    mean, scale = X.reshape(-1, 3).mean(0), X.reshape(-1, 3).std(0)
    dev = torch.device("cpu")
    a = list(WindowSampler(X, 4, mean, scale, dev, seed=3, batch_size=4).batches(0))
    lazy = _Lazy(X)
    b = list(WindowSampler(lazy, 4, mean, scale, dev, seed=3, batch_size=4).batches(0))
    # every batch is full: the last one is completed from the start of the epoch's order
    assert [w.shape for w in a] == [(4, 3, 4, 5)] * 3
    for wa, wb in zip(a, b):
        torch.testing.assert_close(wa, wb)
    assert lazy.rows_read == 12  # one read per row of each batch, nothing more
    # a rank reads only its rows of the global batch, and they are the global batch's rows
    halves = [list(WindowSampler(lazy, 4, mean, scale, dev, seed=3, batch_size=4).batches(0, 1, rows))
              for rows in (slice(0, 2), slice(2, 4))]
    for k, (h0, h1) in enumerate(zip(*halves), start=1):
        torch.testing.assert_close(torch.cat([h0, h1]), a[k])
    # every window is a normalized run of 4 consecutive frames of some trajectory
    w = a[0][0].movedim(0, -1).numpy() * scale + mean  # (4, 5, 3)
    hits = [(i, t) for i in range(9) for t in range(9) if np.allclose(X[i, t : t + 4], w, atol=1e-5)]
    assert len(hits) == 1
