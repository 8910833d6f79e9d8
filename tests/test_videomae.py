"""Tests for skphys.nn.vit and skphys.VideoMAEEmbedder (tiny models, CPU)."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skphys import VideoMAEEmbedder
from skphys.nn.vit import (
    Attention,
    TubeletEmbed,
    VideoMAE,
    patchify,
    sincos_position_3d,
    tube_mask,
)

TINY = dict(
    n_frames=4, patch_size=4, tubelet_size=2, embed_dim=12, depth=1, n_heads=2,
    decoder_embed_dim=12, decoder_depth=1, decoder_n_heads=2, batch_size=4, device="cpu",
)


def waves(n, t=6, size=8, channels=2, seed=0):
    """Travelling plane waves u = sin(k.x - w t + phase) (+ a cos channel): smooth, predictable."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    k = rng.uniform(0.3, 1.2, size=(n, 2))
    phase = rng.uniform(0, 2 * np.pi, size=n)
    tt = np.arange(t)
    arg = (k[:, 0, None, None, None] * x + k[:, 1, None, None, None] * y
           - 0.5 * tt[None, :, None, None] + phase[:, None, None, None])
    chans = [np.sin(arg), np.cos(arg)][:channels]
    return np.stack(chans, axis=-1).astype(np.float32), k


class Lazy:
    """Minimal lazy array-like: shape, len and first-axis indexing, counting reads."""

    def __init__(self, a):
        self.a = a
        self.shape = a.shape
        self.reads = 0

    def __len__(self):
        return len(self.a)

    def __getitem__(self, idx):
        self.reads += 1
        return self.a[idx]


# ---------------------------------------------------------------- nn pieces


def test_tube_mask_same_spatial_mask_every_tubelet():
    grid = (3, 4, 5)
    vis, msk = tube_mask(6, grid, 0.75, generator=torch.Generator().manual_seed(0))
    n_space = 20
    assert vis.shape == (6, 3 * 5) and msk.shape == (6, 3 * 15)
    for v, m in zip(vis, msk):
        allidx = torch.cat([v, m]).sort().values
        assert torch.equal(allidx, torch.arange(60))  # a partition of all tokens
        spatial = [set((v[(v // n_space) == t] % n_space).tolist()) for t in range(3)]
        assert spatial[0] == spatial[1] == spatial[2]  # tubes: same positions every time step
    # different samples get different masks
    assert not all(torch.equal(vis[0], v) for v in vis[1:])
    # at least one patch stays visible even at ratio ~1
    vis, _ = tube_mask(2, grid, 0.999)
    assert vis.shape[1] == 3


def test_patchify_matches_loop_and_is_normalized_per_channel():
    x = torch.randn(2, 3, 4, 8, 12) * 5 + 2
    p = (2, 4, 4)
    raw = patchify(x, p, normalize=False)
    assert raw.shape == (2, 2 * 2 * 3, 3 * 32)
    # token (t, h, w) order, values (c, dt, dh, dw)
    tok = 1 * 6 + 1 * 3 + 2
    expect = x[1, :, 2:4, 4:8, 8:12].reshape(-1)
    torch.testing.assert_close(raw[1, tok], expect)
    norm = patchify(x, p).reshape(2, 12, 3, 32)
    torch.testing.assert_close(norm.mean(-1), torch.zeros(2, 12, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.var(-1, unbiased=False), torch.ones(2, 12, 3), atol=1e-4, rtol=0)


def test_tubelet_embed_token_order_matches_patchify():
    torch.manual_seed(0)
    emb = TubeletEmbed(3, 5, (2, 4, 4))
    x = torch.randn(2, 3, 4, 8, 12)
    w = emb.proj.weight.reshape(5, -1)
    expect = patchify(x, (2, 4, 4), normalize=False) @ w.T + emb.proj.bias
    torch.testing.assert_close(emb(x), expect, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple of the patch"):
        emb(torch.randn(1, 3, 4, 8, 10))


def test_sincos_positions_are_translation_invariant_per_axis():
    pos = sincos_position_3d((4, 5, 6), 36)  # 12 channels per axis
    assert pos.shape == (120, 36)
    grid = pos.reshape(4, 5, 6, 36)
    # sin/cos features: the dot product of the w-axis block depends only on the offset
    wblk = grid[0, 0, :, 24:36]
    g = wblk @ wblk.T
    for k in range(1, 5):
        d = torch.diagonal(g, k)
        torch.testing.assert_close(d, d[0].expand_as(d), atol=1e-5, rtol=0)
    # each axis block depends on its own coordinate only
    torch.testing.assert_close(grid[:, :, 0, :12], grid[:, :, 3, :12])
    torch.testing.assert_close(grid[0, :, :, :12], grid[0, :1, :1, :12].expand(5, 6, 12))
    assert torch.unique(pos, dim=0).shape[0] == 120  # every token distinct


def test_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    att = Attention(8, 2)
    x = torch.randn(3, 5, 8)
    q, k, v = att.qkv(x).reshape(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v
    expect = att.proj(a.transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(att(x), expect, atol=1e-5, rtol=1e-5)


def test_loss_uses_masked_tokens_only():
    """Changing a visible patch's *target* does not change the loss if its input is the same:
    check by comparing the loss with an explicit computation from reconstruct()."""
    torch.manual_seed(0)
    m = VideoMAE(2, patch_size=4, tubelet_size=2, embed_dim=12, depth=1, n_heads=2,
                 decoder_embed_dim=6, decoder_depth=1, decoder_n_heads=1)
    x = torch.randn(2, 2, 4, 8, 8)
    grid = (2, 2, 2)
    vis, msk = tube_mask(2, grid, 0.5, generator=torch.Generator().manual_seed(3))
    pred = m.reconstruct(x, vis, msk)
    target = torch.gather(patchify(x, m.patch_size), 1, msk[:, :, None].expand(-1, -1, pred.shape[-1]))
    expect = F.mse_loss(pred, target)
    got = m.loss(x, 0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expect)


# ---------------------------------------------------------------- estimator


def test_fit_transform_shapes_pooling_and_history():
    X, _ = waves(6)
    emb = VideoMAEEmbedder(**TINY, max_epochs=2, random_state=0).fit(X)
    assert emb.token_grid_ == (2, 2, 2) and emb.n_tokens_ == 8
    Z = emb.transform(X)
    assert Z.shape == (6, 8, 12) and Z.dtype == np.float32
    assert len(emb.history_) == 2 and all(np.isfinite(h["loss"]) for h in emb.history_)
    pooled = emb.set_params(pooling="mean").transform(X)
    np.testing.assert_allclose(pooled, Z.mean(1), rtol=1e-5, atol=1e-6)
    # transform uses the first n_frames frames only
    X2 = X.copy()
    X2[:, 4:] = 7.0
    np.testing.assert_array_equal(emb.transform(X2), pooled)
    # channel statistics learned in fit
    np.testing.assert_allclose(emb.mean_, X.reshape(-1, 2).mean(0), atol=1e-5)
    np.testing.assert_allclose(emb.scale_, X.reshape(-1, 2).std(0), rtol=1e-4)


def test_normalization_makes_embedding_scale_invariant():
    """With per-channel field normalization, scaling and shifting a channel changes nothing."""
    X, _ = waves(4)
    a = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(X)
    Xs = X.copy()
    Xs[..., 0] = Xs[..., 0] * 1000.0 + 50.0
    b = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(Xs)
    np.testing.assert_allclose(a.transform(X), b.transform(Xs), atol=2e-3)


def lattice(n, size=8, t=4, channels=2, period=4, seed=0):
    """Random fields periodic in space with the patch period: every spatial patch of a frame is
    the same, so masked tubes are exactly predictable from the visible tubes of the same time."""
    rng = np.random.default_rng(seed)
    tile = rng.normal(size=(n, t, period, period, channels))
    reps = size // period
    return np.tile(tile, (1, 1, reps, reps, 1)).astype(np.float32)


@pytest.mark.slow
def test_pretraining_learns_to_reconstruct_masked_tubes():
    """After pretraining the masked reconstruction error must drop far below the untrained
    model's and below the trivial predictor (the patch mean, loss 1) on unseen fields."""
    X = lattice(64, channels=1, period=2, seed=1)
    Xte = lattice(32, channels=1, period=2, seed=2)
    cfg = dict(TINY, patch_size=2, embed_dim=24, n_heads=2, decoder_embed_dim=24, mask_ratio=0.75, batch_size=16)
    untrained = VideoMAEEmbedder(**cfg, max_epochs=1, lr=1e-9, random_state=0).fit(X)
    trained = VideoMAEEmbedder(**cfg, max_epochs=40, lr=3e-3, random_state=0).fit(X)
    before = untrained.reconstruction_loss(Xte)
    after = trained.reconstruction_loss(Xte)
    assert trained.history_[-1]["loss"] < trained.history_[0]["loss"]
    assert after < 0.7 and after < 0.5 * before, (before, after)


def test_random_state_reproducible():
    X, _ = waves(4)
    a = VideoMAEEmbedder(**TINY, max_epochs=2, random_state=3).fit(X).transform(X)
    b = VideoMAEEmbedder(**TINY, max_epochs=2, random_state=3).fit(X).transform(X)
    c = VideoMAEEmbedder(**TINY, max_epochs=2, random_state=4).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_one_dimensional_systems():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 6, 16, 2)).astype(np.float32)
    emb = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(X)
    assert emb.token_grid_ == (2, 1, 4)
    assert emb.transform(X).shape == (4, 8, 12)


def test_lazy_input_matches_array():
    X, _ = waves(5)
    lazy = Lazy(X)
    a = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(X)
    b = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(lazy)
    assert lazy.reads > 0
    np.testing.assert_allclose(a.transform(X), b.transform(Lazy(X)), atol=1e-6)


def test_clone_pickle_and_cpu_state():
    X, _ = waves(4)
    emb = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0)
    c = clone(emb)
    assert c.get_params() == emb.get_params() and not hasattr(c, "module_")
    emb.fit(X)
    Z = emb.transform(X)
    emb2 = pickle.loads(pickle.dumps(emb))
    assert all(p.device.type == "cpu" for p in emb2.module_.parameters())
    np.testing.assert_array_equal(emb2.transform(X), Z)
    assert not hasattr(clone(emb), "module_")


def test_cuda_named_model_runs_on_cpu_only_machine():
    """A model whose ``device`` names CUDA (e.g. unpickled from a GPU run) falls back to the CPU
    with a warning where no GPU exists."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    X, _ = waves(3)
    emb = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0).fit(X)
    Z = emb.transform(X)
    emb2 = pickle.loads(pickle.dumps(emb))
    emb2.device = "cuda"
    with pytest.warns(RuntimeWarning, match="not available"):
        np.testing.assert_array_equal(emb2.transform(X), Z)


def test_pipeline_frozen_and_search():
    X, k = waves(12)
    y = k[:, 0]
    emb = VideoMAEEmbedder(**TINY, pooling="mean", max_epochs=1, random_state=0).fit(X)
    pipe = make_pipeline(FrozenEstimator(emb), Ridge())
    search = GridSearchCV(pipe, {"ridge__alpha": [0.1, 10.0]}, cv=2).fit(X, y)
    assert search.best_params_["ridge__alpha"] in (0.1, 10.0)
    assert search.predict(X).shape == (12,)
    # frozen: the embedder was not refitted
    np.testing.assert_array_equal(search.best_estimator_[0].estimator.transform(X), emb.transform(X))
    # an unfrozen pipeline fits the embedder
    pipe2 = make_pipeline(VideoMAEEmbedder(**TINY, pooling="mean", max_epochs=1, random_state=0), Ridge())
    assert pipe2.fit(X, y).predict(X).shape == (12,)


@pytest.mark.parametrize(
    "X, params, match",
    [
        (np.zeros((2, 6, 10, 8, 1), np.float32), {}, "not a multiple of patch_size"),
        (np.zeros((2, 3, 8, 8, 1), np.float32), {}, "3 frames but at least 4"),
        (np.zeros((2, 6, 8, 8, 1), np.float32), {"n_frames": 3}, "not a multiple of tubelet_size"),
        (np.zeros((2, 6, 8, 8, 1), np.float32), {"embed_dim": 13}, "not divisible by n_heads"),
        (np.zeros((2, 6, 8), np.float32), {}, "dimensions"),
        (np.full((2, 6, 8, 8, 1), np.nan, np.float32), {}, "NaN"),
        (np.zeros((2, 6, 8, 8, 1), np.float32), {"pooling": "max"}, "pooling"),
        (np.zeros((2, 6, 8, 8, 1), np.float32), {"mask_ratio": 1.0}, "mask_ratio"),
    ],
)
def test_fit_errors(X, params, match):
    with pytest.raises(ValueError, match=match):
        VideoMAEEmbedder(**{**TINY, **params}, max_epochs=1).fit(X)


def test_transform_errors():
    X, _ = waves(3)
    emb = VideoMAEEmbedder(**TINY, max_epochs=1, random_state=0)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        emb.transform(X)
    emb.fit(X)
    with pytest.raises(ValueError, match="channels"):
        emb.transform(X[..., :1])
    with pytest.raises(ValueError, match="spatial size"):
        emb.transform(np.zeros((2, 6, 12, 12, 2), np.float32))
    with pytest.raises(ValueError, match="frames"):
        emb.transform(X[:, :2])
    bad = X.copy()
    bad[0, 0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        emb.transform(Lazy(bad))
    with pytest.raises(TypeError):
        emb.transform(np.array([["a"]]))


def test_sklearn_tags():
    tags = VideoMAEEmbedder().__sklearn_tags__()
    assert tags.transformer_tags is not None and tags.requires_fit
    assert not tags.input_tags.two_d_array and not tags.target_tags.required
