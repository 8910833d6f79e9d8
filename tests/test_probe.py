"""AttentiveProbeRegressor and the attentive pooler."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from skphys import AttentiveProbeRegressor
from skphys.nn.attentive_pooler import AttentiveHead, AttentivePooler, CrossAttention


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _token_data(n=160, n_tokens=6, dim=16, seed=0):
    """Targets a probe must pool over tokens for: the mean over tokens of two feature contrasts."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_tokens, dim)).astype(np.float32)
    a = (X[:, :, 0] - X[:, :, 1]).mean(axis=1)
    b = (X[:, :, 2] - X[:, :, 3]).mean(axis=1)
    return X, np.c_[a, b]


def _probe(**kw):
    params = dict(max_epochs=40, batch_size=32, mlp_ratio=2, random_state=0)
    params.update(kw)
    return AttentiveProbeRegressor(**params)


def test_cross_attention_matches_manual_softmax():
    torch.manual_seed(0)
    att = CrossAttention(8, n_heads=2)
    q, x = torch.randn(3, 1, 8), torch.randn(3, 5, 8)
    out = att(q, x)
    Q = att.q(q).reshape(3, 1, 2, 4).transpose(1, 2)
    K, V = att.kv(x).reshape(3, 5, 2, 2, 4).permute(2, 0, 3, 1, 4)
    w = torch.softmax(Q @ K.transpose(-1, -2) / 2.0, dim=-1)
    manual = att.proj((w @ V).transpose(1, 2).reshape(3, 1, 8))
    torch.testing.assert_close(out, manual)


def test_pooler_is_token_permutation_invariant():
    torch.manual_seed(0)
    head = AttentiveHead(8, 3, n_heads=4, mlp_ratio=2)
    x = torch.randn(4, 7, 8)
    perm = torch.randperm(7)
    torch.testing.assert_close(head(x), head(x[:, perm]), rtol=1e-5, atol=1e-6)
    assert AttentivePooler(8, n_queries=2, n_heads=4)(x).shape == (4, 2, 8)
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(10, n_heads=4)


def test_learns_multioutput_token_pooling():
    X, y = _token_data()
    Xte, yte = _token_data(seed=1)
    probe = _probe().fit(X, y)
    assert len(probe.history_) == 40 and probe.history_[-1]["loss"] < 0.5 * probe.history_[0]["loss"]
    r2 = r2_score(yte, probe.predict(Xte), multioutput="raw_values")
    assert np.all(r2 > 0.8), r2
    assert probe.predict(Xte).shape == (len(Xte), 2)
    assert probe.predict(Xte[:, :3]).shape == (len(Xte), 2)  # any number of tokens


def test_target_transform_on_chosen_columns():
    X, y = _token_data()
    y = y.astype(np.float64)
    y_raw = np.c_[10.0 ** (2 + y[:, 0]), y[:, 1]]  # column 0 "Reynolds-like"
    probe = _probe(target_transform="log10", transform_columns=[0]).fit(X, y_raw)
    z = np.c_[np.log10(y_raw[:, 0]), y_raw[:, 1]]
    np.testing.assert_allclose(probe.y_mean_, z.mean(0))
    np.testing.assert_allclose(probe.y_scale_, z.std(0))
    np.testing.assert_allclose(probe.transform_target(y_raw), (z - z.mean(0)) / z.std(0))
    pred = probe.predict(X)
    assert np.all(pred[:, 0] > 0)  # back in original units
    np.testing.assert_allclose(np.log10(pred[:, 0]), probe.predict_standardized(X)[:, 0] * z.std(0)[0] + z.mean(0)[0], rtol=1e-6)
    expected = np.mean((probe.predict_standardized(X) - probe.transform_target(y_raw)) ** 2)
    assert probe.standardized_mse(X, y_raw) == pytest.approx(expected)
    # a custom (func, inverse) pair gives the same model as the named one
    custom = _probe(target_transform=(np.log10, lambda v: 10.0**v), transform_columns=[0]).fit(X, y_raw)
    np.testing.assert_allclose(custom.predict(X), pred, rtol=1e-4, atol=1e-5)


def test_train_fraction_is_seeded_subset():
    X, y = _token_data(n=50)
    a = _probe(max_epochs=1, train_fraction=0.3).fit(X, y)
    b = _probe(max_epochs=1, train_fraction=0.3).fit(X, y)
    assert len(a.train_indices_) == 15 and len(np.unique(a.train_indices_)) == 15
    np.testing.assert_array_equal(a.train_indices_, b.train_indices_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = _probe(max_epochs=1, train_fraction=0.3, random_state=1).fit(X, y)
    assert not np.array_equal(a.train_indices_, c.train_indices_)


def test_2d_input_and_1d_target_and_pickle():
    X, y = _token_data(n=64)
    X2 = X.mean(axis=1)
    probe = _probe(max_epochs=2).fit(X2, y[:, 0])
    assert probe.n_features_in_ == 16 and probe.predict(X2).shape == (64,)
    clone = pickle.loads(pickle.dumps(probe))
    np.testing.assert_array_equal(clone.predict(X2), probe.predict(X2))


def test_gpu_named_model_runs_on_cpu():
    """A model whose device names CUDA (as after GPU training) still predicts on a CPU-only host."""
    X, y = _token_data(n=32)
    probe = _probe(max_epochs=1, device="cpu").fit(X, y)
    probe.set_params(device="cuda")
    restored = pickle.loads(pickle.dumps(probe))
    if torch.cuda.is_available():
        pytest.skip("CUDA available; the CPU fallback is not exercised")
    with pytest.warns(RuntimeWarning, match="running on the CPU"):
        pred = restored.predict(X)
    np.testing.assert_allclose(pred, probe.set_params(device="cpu").predict(X), rtol=1e-6)


def test_verbose_progress(capsys):
    X, y = _token_data(n=32)
    _probe(max_epochs=2, verbose=2).fit(X, y)
    out = capsys.readouterr()
    assert "epoch" in out.out and "loss=" in out.out


def test_errors():
    X, y = _token_data(n=20)
    with pytest.raises(ValueError, match="samples but y has"):
        _probe(max_epochs=1).fit(X, y[:-1])
    Xn = X.copy()
    Xn[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _probe(max_epochs=1).fit(Xn, y)
    with pytest.raises(ValueError, match="dimensions"):
        _probe(max_epochs=1).fit(X[..., None], y)
    with pytest.raises(ValueError, match="log"):
        _probe(max_epochs=1, target_transform="log10").fit(X, y)  # negative targets
    with pytest.raises(ValueError, match="out of range"):
        _probe(max_epochs=1, target_transform="log10", transform_columns=[5]).fit(X, np.abs(y) + 1)
    with pytest.raises(ValueError, match="train_fraction"):
        _probe(train_fraction=0.0).fit(X, y)
    with pytest.raises(ValueError, match="target_transform"):
        _probe(target_transform="sqrt").fit(X, y)
    fitted = _probe(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="expecting 16 features"):
        fitted.predict(X[..., :8])


# ---------------------------------------------------------------- the non-learned baseline
def test_spectral_features_white_noise_and_sinusoid():
    from skphys._features import SpectralStatsFeatures

    rng = np.random.default_rng(0)
    # white noise of variance 4: flat spectrum at log10(4) in every radial bin (Parseval)
    X = (2.0 * rng.normal(size=(3, 6, 64, 64, 1))).astype(np.float32)
    f = SpectralStatsFeatures(n_bins=4).fit_transform(X)
    assert f.shape == (3, 7)
    np.testing.assert_allclose(f[:, 1], 2.0, rtol=0.02)  # std
    np.testing.assert_allclose(f[:, 2], 2.0 * np.sqrt(2), rtol=0.03)  # increments of independent frames
    np.testing.assert_allclose(f[:, 3:], np.log10(4.0), atol=0.05)
    # a standing sinusoid at k = 12/64 cycles/point (1-D, 64 points): all power in bin 1 = (1/8, 1/4]
    x = np.arange(64)
    field = 3.0 * np.sin(2 * np.pi * 12 / 64 * x) + 1.5
    Xs = np.broadcast_to(field[None, None, :, None], (2, 5, 64, 1)).astype(np.float32)
    est = SpectralStatsFeatures(n_bins=4).fit(Xs)
    g = est.transform(Xs)[0]
    names = list(est.get_feature_names_out())
    assert g[names.index("ch0_mean")] == pytest.approx(1.5, abs=1e-5)
    assert g[names.index("ch0_std")] == pytest.approx(3.0 / np.sqrt(2), rel=1e-5)
    assert g[names.index("ch0_dt_std")] == pytest.approx(0.0, abs=1e-6)
    logpow = g[3:]
    assert np.argmax(logpow) == 1
    counts = np.bincount(np.digitize(np.fft.rfftfreq(64)[1:], [0.125, 0.25, 0.375], right=True))
    assert logpow[1] == pytest.approx(np.log10(9.0 * 64 / 4 / counts[1]), abs=1e-4)  # |F|^2/N = A^2 N/4
    assert np.all(np.delete(logpow, 1) < -10)
    with pytest.raises(ValueError, match="spatial shape"):
        est.transform(Xs[:, :, :32])
    with pytest.raises(ValueError, match="frames"):
        SpectralStatsFeatures(n_frames=8).fit(Xs)
