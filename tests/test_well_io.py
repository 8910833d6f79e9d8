"""The Well I/O: write_well, load_well, LazyWindows and the ``python -m skphys.datasets`` CLI."""

import glob
import os
import pickle
import re
import tracemalloc

import h5py
import numpy as np
import pytest
import yaml
from sklearn.model_selection import GroupKFold, KFold, train_test_split
from sklearn.utils import Bunch, _safe_indexing
from the_well.data import WellDataset
from the_well.data.normalization import RMSNormalization, ZScoreNormalization
from the_well.utils.dummy_data import write_dummy_data

from skphys.datasets import LazyWindows, load_well, write_well
from skphys.datasets import _well_write


def _bunch_1d(n=4, T=12, nx=16, seed=0):
    """Travelling waves u = a sin(x - c t) + noise; parameters (c, a)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2 * np.pi, nx, endpoint=False)
    t = np.arange(T) * 0.25
    c = rng.uniform(0.5, 2.0, n)
    a = rng.uniform(1.0, 3.0, n)
    u = a[:, None, None] * np.sin(x[None, None, :] - c[:, None, None] * t[None, :, None])
    v = u + 0.1 * rng.normal(size=u.shape)
    X = np.stack([u, v], axis=-1).astype(np.float32)
    return Bunch(
        data=X,
        target=np.stack([c, a], axis=1),
        target_names=["c", "a"],
        field_names=["u", "v"],
        time=t,
        coords=(x,),
        dim_names=("x",),
        boundary_conditions={"x": "periodic"},
        dt=0.25,
        DESCR="travelling waves",
    )


def _bunch_2d(n=3, T=6, ny=8, nx=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, ny, nx, 4)).astype(np.float32)
    X[..., 1] += 5.0  # a field with a large mean
    return Bunch(
        data=X,
        target=rng.uniform(1, 2, size=(n, 2)),
        target_names=["Reynolds", "Schmidt"],
        field_names=["velocity_x", "tracer", "velocity_y", "pressure"],
        time=np.arange(T) * 0.1,
        coords=(np.linspace(0, 1, ny), np.linspace(0, 2, nx)),
        dim_names=("y", "x"),
        boundary_conditions={"y": "wall", "x": "periodic"},
        dt=0.1,
        DESCR="random 2-D fields",
    )


def _files(path, split="train"):
    return sorted(glob.glob(os.path.join(path, "data", split, "*")) + glob.glob(os.path.join(path, "data", split, ".*")))


# --------------------------------------------------------------------------------------------------
# The Well's format rules (as in The Well repository's scripts/check_thewell_formatting.py, which
# the pip package does not ship), checked on our files.
# --------------------------------------------------------------------------------------------------


def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def _check_well_format(path):
    with h5py.File(path, "r") as f:
        for a in ("n_spatial_dims", "n_trajectories", "dataset_name", "grid_type", "simulation_parameters"):
            assert a in f.attrs, a
        assert isinstance(f.attrs["n_trajectories"], (int, np.integer))
        assert isinstance(f.attrs["dataset_name"], str) and isinstance(f.attrs["grid_type"], str)
        for p in f.attrs["simulation_parameters"]:
            assert p in f.attrs
        dims = f["dimensions"]
        assert "time" in dims and _is_bool(dims["time"].attrs["sample_varying"])
        spatial = list(dims.attrs["spatial_dims"])
        assert isinstance(spatial[0], str) and len(spatial) == f.attrs["n_spatial_dims"] > 0
        for d in spatial:
            assert _is_bool(dims[d].attrs["sample_varying"]) and _is_bool(dims[d].attrs["time_varying"])
        for i in range(3):
            g = f[f"t{i}_fields"]
            assert isinstance(g.attrs["field_names"], (list, np.ndarray))
            for name in g.attrs["field_names"]:
                ds = g[name]
                assert ds.dtype == np.float32
                k = 0
                assert _is_bool(ds.attrs["sample_varying"]) and _is_bool(ds.attrs["time_varying"])
                if ds.attrs["sample_varying"]:
                    assert ds.shape[k] == f.attrs["n_trajectories"]
                    k += 1
                if ds.attrs["time_varying"]:
                    assert ds.shape[k] == dims["time"].shape[-1]
                    k += 1
                dv = ds.attrs["dim_varying"]
                assert len(dv) == len(spatial) and _is_bool(dv[0])
                for j, d in enumerate(spatial):
                    if dv[j]:
                        assert ds.shape[k] == dims[d].shape[-1]
                        k += 1
                assert ds.ndim == k + i and ds.shape[k:] == (len(spatial),) * i
        sc = f["scalars"]
        for name in sc.attrs["field_names"]:
            ds = sc[name]
            assert _is_bool(ds.attrs["sample_varying"]) and _is_bool(ds.attrs["time_varying"])
            assert ds.ndim == int(ds.attrs["sample_varying"]) + int(ds.attrs["time_varying"])
        for key in f["boundary_conditions"]:
            bc = f["boundary_conditions"][key]
            for a in ("bc_type", "associated_fields", "associated_dims", "sample_varying", "time_varying"):
                assert a in bc.attrs
            assert bc.attrs["bc_type"].lower() in ("periodic", "wall", "open")
            k = int(bc.attrs["sample_varying"]) + int(bc.attrs["time_varying"])
            assert len(bc.attrs["associated_dims"]) > 0
            for j, d in enumerate(bc.attrs["associated_dims"]):
                assert d in spatial and bc["mask"].shape[k + j] == dims[d].shape[-1]


# --------------------------------------------------------------------------------------------------
# write_well -> the_well.data.WellDataset
# --------------------------------------------------------------------------------------------------


def test_write_well_files_open_in_the_well(tmp_path):
    b = _bunch_1d(n=5, T=12)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    assert path == os.path.join(str(tmp_path), "datasets", "waves")
    files = _files(path)
    assert [os.path.basename(f) for f in files] == [f"waves_train_00{k}.hdf5" for k in range(3)]
    for f in files:
        _check_well_format(f)

    ds = WellDataset(path=path, well_split_name="train", n_steps_input=3, n_steps_output=2, use_normalization=False)
    assert ds.metadata.constant_scalar_names == ["c", "a"]
    assert ds.metadata.field_names[0] == ["u", "v"]
    assert len(ds) == 5 * (12 - 5 + 1)
    for index in (0, 9, len(ds) - 1):
        traj, t0 = divmod(index, 8)
        s = ds[index]
        np.testing.assert_array_equal(s["input_fields"].numpy(), b.data[traj, t0 : t0 + 3])
        np.testing.assert_array_equal(s["output_fields"].numpy(), b.data[traj, t0 + 3 : t0 + 5])
        np.testing.assert_array_equal(s["constant_scalars"].numpy(), b.target[traj])
        np.testing.assert_allclose(s["input_time_grid"].numpy(), b.time[:3] - b.time[0])
        np.testing.assert_array_equal(s["boundary_conditions"].numpy(), [[2, 2]])  # periodic both ends
        np.testing.assert_allclose(s["space_grid"].numpy()[:, 0], b.coords[0])


def test_stats_yaml_matches_data_and_drives_well_normalization(tmp_path):
    b = _bunch_2d(n=3, T=6)
    path = write_well(b, tmp_path, "flow")
    stats = yaml.safe_load(open(os.path.join(path, "stats.yaml")))
    assert set(stats) == {"mean", "std", "mean_delta", "std_delta", "rms", "rms_delta"}
    X = b.data.astype(np.float64)
    dX = np.diff(X, axis=1)
    for name, ch in (("tracer", 1), ("pressure", 3)):
        np.testing.assert_allclose(stats["mean"][name], X[..., ch].mean(), rtol=1e-12)
        np.testing.assert_allclose(stats["std"][name], X[..., ch].std(), rtol=1e-12)
        np.testing.assert_allclose(stats["rms"][name], np.sqrt((X[..., ch] ** 2).mean()), rtol=1e-12)
        np.testing.assert_allclose(stats["mean_delta"][name], dX[..., ch].mean(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(stats["std_delta"][name], dX[..., ch].std(), rtol=1e-12)
        np.testing.assert_allclose(stats["rms_delta"][name], np.sqrt((dX[..., ch] ** 2).mean()), rtol=1e-12)
    # vector field: one entry per component in the file's axis order (y, x)
    np.testing.assert_allclose(stats["std"]["velocity"], [X[..., 2].std(), X[..., 0].std()], rtol=1e-12)

    for norm, fn in (
        (ZScoreNormalization, lambda x, n: (x - stats["mean"][n]) / stats["std"][n]),
        (RMSNormalization, lambda x, n: x / stats["rms"][n]),
    ):
        ds = WellDataset(
            path=path, well_split_name="train", n_steps_input=2, n_steps_output=1, use_normalization=True, normalization_type=norm
        )
        assert ds.metadata.field_names[0] == ["tracer", "pressure"]
        assert ds.metadata.field_names[1] == ["velocity_y", "velocity_x"]
        got = ds[0]["input_fields"].numpy()
        np.testing.assert_allclose(got[..., 0], fn(b.data[0, :2, ..., 1], "tracer"), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[..., 1], fn(b.data[0, :2, ..., 3], "pressure"), rtol=1e-5, atol=1e-6)


def test_stats_come_from_train_split(tmp_path):
    b = _bunch_1d(n=3)
    path = write_well(b, tmp_path, "waves", split="valid")
    stats_valid = yaml.safe_load(open(os.path.join(path, "stats.yaml")))
    b2 = _bunch_1d(n=3, seed=5)
    b2.data = b2.data * 2.0
    write_well(b2, tmp_path, "waves", split="train")
    stats_train = yaml.safe_load(open(os.path.join(path, "stats.yaml")))
    np.testing.assert_allclose(stats_train["std"]["u"], b2.data[..., 0].astype(np.float64).std(), rtol=1e-12)
    write_well(_bunch_1d(n=2, seed=7), tmp_path, "waves", split="test")  # keeps the train stats
    assert yaml.safe_load(open(os.path.join(path, "stats.yaml"))) == stats_train != stats_valid


# --------------------------------------------------------------------------------------------------
# round trips through load_well
# --------------------------------------------------------------------------------------------------


def test_load_well_round_trip_exact(tmp_path):
    b = _bunch_2d(n=3, T=6)
    path = write_well(b, tmp_path, "flow", n_trajectories_per_file=2)
    ds = load_well(path, n_frames=6)
    assert ds.data.dtype == np.float32
    np.testing.assert_array_equal(ds.data, b.data)  # channel order restored from skphys_field_names
    np.testing.assert_array_equal(ds.target, b.target)
    assert ds.field_names == b.field_names and ds.target_names == b.target_names
    assert ds.dim_names == ("y", "x") and ds.boundary_conditions == {"y": "wall", "x": "periodic"}
    np.testing.assert_array_equal(ds.time, b.time)
    assert ds.dt == pytest.approx(0.1)
    for c, c0 in zip(ds.coords, b.coords):
        np.testing.assert_array_equal(c, c0)
    np.testing.assert_array_equal(ds.groups, [0, 1, 2])
    assert "random 2-D fields" in ds.DESCR

    X, y = load_well(path, n_frames=3, stride=1, return_X_y=True)
    assert X.shape == (3 * 4, 3, 8, 4, 4) and y.shape == (12, 2)
    for w in range(12):
        traj, s = divmod(w, 4)
        np.testing.assert_array_equal(X[w], b.data[traj, s : s + 3])
        np.testing.assert_array_equal(y[w], b.target[traj])

    ds = load_well(path, n_frames=4, stride=2)  # (6 - 4) // 2 + 1 = 2 windows per trajectory
    np.testing.assert_array_equal(ds.groups, [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(ds.time_offsets, [0.0, 0.2] * 3)
    np.testing.assert_array_equal(ds.data[3], b.data[1, 2:6])


def test_load_well_fields_and_max_trajectories(tmp_path):
    b = _bunch_2d(n=5, T=6)
    path = write_well(b, tmp_path, "flow", n_trajectories_per_file=2)
    ds = load_well(path, n_frames=6, fields=["pressure", "velocity_x"])
    assert ds.field_names == ["pressure", "velocity_x"]
    np.testing.assert_array_equal(ds.data, b.data[..., [3, 0]])
    ds = load_well(path, n_frames=6, fields=["velocity"])  # all components, in the file's axis order
    assert ds.field_names == ["velocity_y", "velocity_x"]
    np.testing.assert_array_equal(ds.data, b.data[..., [2, 0]])
    with pytest.raises(ValueError, match="unknown field 'vorticity'"):
        load_well(path, n_frames=6, fields=["vorticity"])

    ds = load_well(path, n_frames=3, max_trajectories=3)  # crosses a file boundary
    np.testing.assert_array_equal(ds.groups, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ds.data[4], b.data[2, :3])
    np.testing.assert_array_equal(ds.target[::2], b.target[:3])

    # name + base_path
    X, _ = load_well("flow", base_path=tmp_path, n_frames=6, return_X_y=True)
    np.testing.assert_array_equal(X, b.data)


def test_load_real_well_style_file(tmp_path):
    """A file from the_well's own dummy writer: a t1 field, a constant field and a time-varying
    scalar next to the two constant parameters."""
    d = tmp_path / "datasets" / "dummy" / "data" / "train"
    d.mkdir(parents=True)
    write_dummy_data(str(d / "dummy.hdf5"))
    ds = load_well(tmp_path / "datasets" / "dummy", n_frames=5, stride=5)
    with h5py.File(d / "dummy.hdf5") as f:
        field = f["t1_fields/field"][:]
    assert ds.field_names == ["field_x", "field_y"]
    assert ds.target_names == ["a", "b"]
    np.testing.assert_array_equal(ds.target, [[0.25, 0.75]] * 4)
    np.testing.assert_array_equal(ds.data[1], field[0, 5:10])
    np.testing.assert_array_equal(ds.data[2], field[1, 0:5])
    assert ds.boundary_conditions == {"x": "periodic", "y": "periodic"}


def test_shear_flow_rayleigh_is_reynolds(tmp_path):
    """The published shear_flow files name the Reynolds number "Rayleigh" and store one parameter
    set per file as non-sample-varying scalars."""
    b = _bunch_2d(n=4, T=5)
    b.target_names = ["Rayleigh", "Schmidt"]
    b.target = np.repeat(np.array([[1e4, 0.1], [5e4, 2.0]]), 2, axis=0)
    path = write_well(b, tmp_path, "shear_flow", n_trajectories_per_file=2)
    for k, f in enumerate(_files(path)):
        with h5py.File(f, "r+") as h:
            for j, s in enumerate(["Rayleigh", "Schmidt"]):
                del h["scalars"][s]
                ds = h["scalars"].create_dataset(s, data=np.float64(b.target[2 * k, j]))
                ds.attrs["sample_varying"] = False
                ds.attrs["time_varying"] = False
            _check_well_format(f)
    ds = load_well(path, n_frames=5)
    assert ds.target_names == ["Reynolds", "Schmidt"]
    np.testing.assert_array_equal(ds.target, b.target)
    assert "'Rayleigh' is returned as 'Reynolds'" in ds.DESCR
    # other datasets keep the name
    b.target_names = ["Rayleigh", "Prandtl"]
    path = write_well(b, tmp_path, "rayleigh_benard")
    assert load_well(path, n_frames=5).target_names == ["Rayleigh", "Prandtl"]


# --------------------------------------------------------------------------------------------------
# LazyWindows
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def lazy_setup(tmp_path):
    b = _bunch_1d(n=6, T=12, nx=16)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=4)
    X, y = load_well(path, n_frames=4, lazy=True, return_X_y=True)
    X_eager = load_well(path, n_frames=4).data
    return b, path, X, y, X_eager


def test_lazy_windows_indexing(lazy_setup):
    b, path, X, y, X_eager = lazy_setup
    assert isinstance(X, LazyWindows)
    assert X.shape == (18, 4, 16, 2) == X_eager.shape and X.dtype == np.float32 and X.ndim == 4 and len(X) == 18
    np.testing.assert_array_equal(X[5], X_eager[5])
    np.testing.assert_array_equal(X[-1], X_eager[-1])
    np.testing.assert_array_equal(X[np.int64(7)], X_eager[7])
    np.testing.assert_array_equal(X[2:11:3], X_eager[2:11:3])
    np.testing.assert_array_equal(X[[4, 0, 17, 4]], X_eager[[4, 0, 17, 4]])
    np.testing.assert_array_equal(X[np.array([3, -2])], X_eager[np.array([3, -2])])
    mask = np.arange(18) % 4 == 1
    np.testing.assert_array_equal(X[mask], X_eager[mask])
    np.testing.assert_array_equal(X[[1, 2], ..., 1], X_eager[[1, 2], ..., 1])
    np.testing.assert_array_equal(X[3, 0, :, 0], X_eager[3, 0, :, 0])
    np.testing.assert_array_equal(np.asarray(X), X_eager)
    assert X[np.array([], dtype=int)].shape == (0, 4, 16, 2)
    with pytest.raises(IndexError):
        X[18]
    with pytest.raises(IndexError):
        X[[0, 18]]
    with pytest.raises(IndexError):
        X[np.ones(5, dtype=bool)]
    with pytest.raises(TypeError):
        X[1.5]


def test_lazy_windows_with_sklearn(lazy_setup):
    b, path, X, y, X_eager = lazy_setup
    idx = np.array([9, 1, 4])
    np.testing.assert_array_equal(_safe_indexing(X, idx), X_eager[idx])
    np.testing.assert_array_equal(_safe_indexing(X, np.arange(18) < 3), X_eager[:3])
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    Etr, Ete, eytr, eyte = train_test_split(X_eager, y, test_size=0.25, random_state=0)
    np.testing.assert_array_equal(Xtr, Etr)
    np.testing.assert_array_equal(Xte, Ete)
    np.testing.assert_array_equal(ytr, eytr)
    folds = list(KFold(3, shuffle=True, random_state=0).split(X))
    assert folds and all(len(tr) + len(te) == 18 for tr, te in folds)
    groups = load_well(path, n_frames=4).groups
    for tr, te in GroupKFold(3).split(X, y, groups):
        assert not set(groups[tr]) & set(groups[te])


def test_lazy_windows_pickle(lazy_setup):
    b, path, X, y, X_eager = lazy_setup
    X2 = pickle.loads(pickle.dumps(X))
    assert X2.open_files == [] and X2.shape == X.shape
    np.testing.assert_array_equal(X2[[0, 17]], X_eager[[0, 17]])
    assert len(pickle.dumps(X)) < 10_000  # stores the window table, not data


def _count_reads(monkeypatch):
    """Record (field path, trajectory in file, first frame, end frame) of every field read."""
    from skphys.datasets import _well_lazy

    calls = []
    original = _well_lazy._OpenFile.read

    def spy(self, p, ti, r0, r1, dest):
        calls.append((self.layout.fields[p].path, ti, r0, r1))
        return original(self, p, ti, r0, r1, dest)

    monkeypatch.setattr(_well_lazy._OpenFile, "read", spy)
    return calls


def test_lazy_windows_read_only_what_is_asked(tmp_path, monkeypatch):
    b = _bunch_1d(n=40, T=32, nx=256)  # 40 * 32 * 256 * 2 * 4 B = 2.6 MB
    path = write_well(b, tmp_path, "waves")
    data_bytes = b.data.nbytes

    X = load_well(path, n_frames=8, lazy=True)
    calls = _count_reads(monkeypatch)
    assert X.data.open_files == []  # nothing opened at construction
    tracemalloc.start()
    window = X.data[37]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one read per field, of exactly the window's frames
    assert sorted(calls) == [("t0_fields/u", 9, 8, 16), ("t0_fields/v", 9, 8, 16)]
    np.testing.assert_array_equal(window, b.data[9, 8:16])
    assert peak < data_bytes / 10, (peak, data_bytes)


# --------------------------------------------------------------------------------------------------
# atomic writes, overwrite
# --------------------------------------------------------------------------------------------------


def test_failure_mid_write_leaves_nothing(tmp_path):
    b = _bunch_1d(n=5)
    b.data[3, 4, 2, 1] = np.nan  # found while writing the second file
    with pytest.raises(ValueError, match="trajectory 3 contains NaN"):
        write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    assert not os.path.exists(tmp_path / "datasets")  # nor the directories it created


def test_failure_after_files_keeps_old_files(tmp_path, monkeypatch):
    b = _bunch_1d(n=4)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    before = {f: open(f, "rb").read() for f in _files(path)}
    stats_before = open(os.path.join(path, "stats.yaml")).read()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(_well_write, "_field_stats", boom)
    b2 = _bunch_1d(n=3, seed=3)
    with pytest.raises(RuntimeError, match="disk full"):
        write_well(b2, tmp_path, "waves", overwrite=True)
    assert {f: open(f, "rb").read() for f in _files(path)} == before  # no temp files, old ones intact
    assert open(os.path.join(path, "stats.yaml")).read() == stats_before
    assert not [f for f in os.listdir(path) if f.endswith(".tmp")]


def test_failure_inside_h5py_write(tmp_path, monkeypatch):
    """An error raised by h5py itself in the middle of a file."""
    b = _bunch_1d(n=3)
    original = h5py.Dataset.__setitem__
    count = []

    def flaky(self, key, value):
        count.append(1)
        if len(count) == 3:
            raise OSError("simulated I/O error")
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", flaky)
    with pytest.raises(OSError, match="simulated"):
        write_well(b, tmp_path, "waves")
    assert not os.path.exists(tmp_path / "datasets")


def test_overwrite(tmp_path):
    b = _bunch_1d(n=5)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    assert len(_files(path)) == 3
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_well(b, tmp_path, "waves")
    b2 = _bunch_1d(n=2, seed=9)
    write_well(b2, tmp_path, "waves", overwrite=True)
    assert [os.path.basename(f) for f in _files(path)] == ["waves_train_000.hdf5"]  # stale files removed
    X, y = load_well(path, n_frames=12, return_X_y=True)
    np.testing.assert_array_equal(X, b2.data)
    np.testing.assert_array_equal(y, b2.target)


# --------------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (lambda b: b.pop("coords"), ValueError, "lacks the key"),
        (lambda b: b.__setitem__("data", b.data[0]), ValueError, "4 dimensions"),
        (lambda b: b.__setitem__("data", b.data[:, :1]), ValueError, "at least 2 frames"),
        (lambda b: b.__setitem__("field_names", ["u"]), ValueError, "field_names"),
        (lambda b: b.__setitem__("target", b.target[:2]), ValueError, "target must have shape"),
        (lambda b: b.__setitem__("target_names", ["c"]), ValueError, "target_names"),
        (lambda b: b.__setitem__("time", b.time[:-1]), ValueError, "time must be 1-D"),
        (lambda b: b.__setitem__("coords", (b.coords[0][:-1],)), ValueError, "coords for axis 'x'"),
        (lambda b: b.__setitem__("boundary_conditions", {"x": "reflective"}), ValueError, "not one of"),
        (lambda b: b.__setitem__("dt", -1.0), ValueError, "dt must be"),
        (lambda b: b.target.__setitem__((0, 0), np.nan), ValueError, "target contains NaN"),
        (lambda b: b.__setitem__("data", b.data.astype(np.complex64)), TypeError, "real"),
        (lambda b: b.__setitem__("field_names", ["u", "u"]), ValueError, "duplicates"),
    ],
)
def test_write_well_rejects_bad_bunch(tmp_path, change, exc, match):
    b = _bunch_1d()
    change(b)
    with pytest.raises(exc, match=match):
        write_well(b, tmp_path, "waves")
    assert not os.path.exists(tmp_path / "datasets")


def test_write_well_rejects_bad_arguments(tmp_path):
    b = _bunch_1d()
    with pytest.raises(TypeError, match="Bunch"):
        write_well(b.data, tmp_path, "waves")
    with pytest.raises(ValueError, match="name"):
        write_well(b, tmp_path, "../escape")
    with pytest.raises(ValueError, match="split"):
        write_well(b, tmp_path, "waves", split="a/b")
    with pytest.raises(ValueError, match="n_trajectories_per_file"):
        write_well(b, tmp_path, "waves", n_trajectories_per_file=0)


def test_load_well_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset directory"):
        load_well(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="looked in"):
        load_well("nope", base_path=tmp_path)
    b = _bunch_1d(n=3, T=12)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    with pytest.raises(FileNotFoundError, match=r"no split 'valid'.*available splits: \['train'\]"):
        load_well(path, split="valid")
    os.makedirs(os.path.join(path, "data", "test"))
    with pytest.raises(FileNotFoundError, match="no .hdf5/.h5 files"):
        load_well(path, split="test")
    with pytest.raises(ValueError, match="n_frames=13 is longer than the 12 frames"):
        load_well(path, n_frames=13)
    with pytest.raises(ValueError, match="n_frames must be >= 1"):
        load_well(path, n_frames=0)
    with pytest.raises(TypeError, match="stride"):
        load_well(path, stride=1.5)

    # a corrupt file (not HDF5 at all) and a truncated one are named in the error
    files = _files(path)
    with open(files[1], "r+b") as fh:
        fh.truncate(os.path.getsize(files[1]) // 2)
    with pytest.raises(ValueError, match=os.path.basename(files[1])):
        load_well(path, n_frames=4)
    with open(files[0], "wb") as fh:
        fh.write(b"this is not an HDF5 file" * 10)
    with pytest.raises(ValueError, match=os.path.basename(files[0]) + ".*corrupt or truncated"):
        load_well(path, n_frames=4)


def test_lazy_windows_detects_changed_files(lazy_setup):
    b, path, X, y, X_eager = lazy_setup
    X2 = pickle.loads(pickle.dumps(X))
    write_well(_bunch_1d(n=2, T=12), os.path.dirname(os.path.dirname(path)), "waves", overwrite=True)
    with pytest.raises(ValueError, match="changed since"):
        X2[0]


def test_lazy_batches_merge_nearby_windows(tmp_path, monkeypatch):
    b = _bunch_1d(n=5, T=12, nx=8)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    eager = np.stack([b.data[i, s : s + 4] for i in range(5) for s in range(0, 9, 2)])  # stride 2
    X = load_well(path, n_frames=4, stride=2, lazy=True).data
    calls = _count_reads(monkeypatch)
    np.testing.assert_array_equal(X[:], eager)
    # one read of each whole trajectory and field: 5 trajectories x 2 fields
    assert sorted(calls) == sorted((name, i, 0, 12) for name in ("t0_fields/u", "t0_fields/v") for i in (0, 1, 0, 1, 0))
    calls.clear()
    # windows 0, 1, 2 of trajectory 0 (frames 0:8, one run), window 2 of trajectory 1 (file 0, sample 1),
    # window 4 of trajectory 4 (file 2, sample 0)
    idx = [24, 7, 0, 1, 2, 0]
    np.testing.assert_array_equal(X.read(idx), eager[idx])
    assert sorted(c[1:] for c in calls if c[0] == "t0_fields/u") == [(0, 0, 8), (0, 8, 12), (1, 4, 8)]


# --------------------------------------------------------------------------------------------------
# simulators and the command line
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "system, kwargs",
    [
        ("convection_diffusion", dict(n_points=8, n_frames=6)),
        ("nonlinear_schrodinger", dict(n_points=16, n_frames=6, t_max=0.05)),
    ],
)
def test_simulator_round_trip(tmp_path, system, kwargs):
    from skphys.datasets import make_system

    b = make_system(system, 3, random_state=0, device="cpu", **kwargs)
    path = write_well(b, tmp_path, system, n_trajectories_per_file=2)
    ds = WellDataset(path=path, well_split_name="train", n_steps_input=6, n_steps_output=0, use_normalization=False)
    assert len(ds) == 3
    for i in range(3):
        s = ds[i]
        np.testing.assert_array_equal(s["input_fields"].numpy(), b.data[i])
        np.testing.assert_array_equal(s["constant_scalars"].numpy(), b.target[i])
    back = load_well(path, n_frames=6)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(back.data, b.data)
    np.testing.assert_array_equal(back.target, b.target)
    assert back.target_names == list(b.target_names) and back.field_names == list(b.field_names)
    assert back.dim_names == tuple(b.dim_names) and back.boundary_conditions == dict(b.boundary_conditions)
    assert back.dt == b.dt
    np.testing.assert_array_equal(back.time, b.time)


def test_cli_writes_a_loadable_dataset(tmp_path, capsys):
    from skphys.datasets import make_system
    from skphys.datasets.__main__ import main

    argv = ["convection_diffusion", "--n-samples", "3", "--root", str(tmp_path), "--seed", "4", "--device", "cpu",
            "--n-points", "8", "--n-frames", "4", "--split", "valid", "--name", "cd", "--quiet"]
    assert main(argv) == 0
    assert "wrote 3 convection_diffusion trajectories" in capsys.readouterr().out
    X, y = load_well("cd", base_path=tmp_path, split="valid", n_frames=4, return_X_y=True)
    ref = make_system("convection_diffusion", 3, random_state=4, device="cpu", n_points=8, n_frames=4)
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)

    with pytest.raises(SystemExit) as exc:  # exists already
        main(argv)
    assert exc.value.code == 2 and "overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--noise", "0.5"]) == 0
    X2, _ = load_well("cd", base_path=tmp_path, split="valid", n_frames=4, return_X_y=True)
    assert 0.3 < np.std(X2 - ref.data) < 0.7


@pytest.mark.parametrize(
    "argv, match",
    [
        (["heat_equation", "--n-samples", "2", "--root", "R"], "unknown system 'heat_equation'"),
        (["kuramoto_sivashinsky", "--n-samples", "2", "--root", "R", "--bogus", "1"], "no option.*--bogus"),
        (["kuramoto_sivashinsky", "--n-samples", "2", "--root", "R", "--n-points"], "needs a value"),
        (["kuramoto_sivashinsky", "--n-samples", "0", "--root", "R"], "n-samples must be >= 1"),
        (["kuramoto_sivashinsky", "--n-samples", "2", "--root", "R", "--random-state", "1"], "own options"),
        (["kuramoto_sivashinsky", "--root", "R"], "n-samples"),
    ],
)
def test_cli_errors(tmp_path, capsys, argv, match):
    from skphys.datasets.__main__ import main

    argv = [str(tmp_path) if a == "R" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "datasets")


def test_cli_help(capsys):
    from skphys.datasets.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "kuramoto_sivashinsky: --gamma" in out and "--n-samples" in out


# --------------------------------------------------------------------------------------------------
# the fast reader against the_well's WellDataset (the reference for what the format means)
# --------------------------------------------------------------------------------------------------


def _bunch_tensor(n=5, T=7, ny=6, nx=4, seed=2):
    """Active-matter-like channels: a scalar, a vector and a rank-2 tensor field, interleaved."""
    rng = np.random.default_rng(seed)
    names = ["concentration", "D_yy", "velocity_x", "D_yx", "D_xy", "velocity_y", "D_xx", "pressure"]
    X = rng.normal(size=(n, T, ny, nx, len(names))).astype(np.float32)
    X += np.arange(len(names), dtype=np.float32)  # a different mean per channel
    return Bunch(
        data=X,
        target=rng.uniform(1, 2, size=(n, 2)),
        target_names=["alpha", "zeta"],
        field_names=names,
        time=np.arange(T) * 0.5,
        coords=(np.linspace(0, 1, ny), np.linspace(0, 2, nx)),
        dim_names=("y", "x"),
        boundary_conditions={"y": "periodic", "x": "periodic"},
        dt=0.5,
        DESCR="tensor fields",
    )


def _assert_matches_well_dataset(path, n_frames, windows=None):
    """load_well(stride=1, lazy=True) window w == WellDataset(n_steps_input=n_frames)[w], by channel name."""
    from the_well.data.utils import flatten_field_names

    X = load_well(path, n_frames=n_frames, stride=1, lazy=True).data
    ds = WellDataset(path=path, well_split_name="train", n_steps_input=n_frames, n_steps_output=0, use_normalization=False)
    assert len(ds) == len(X)
    names = flatten_field_names(ds.metadata, include_constants=False)
    perm = [X.field_names.index(c) for c in names]
    windows = np.arange(len(X)) if windows is None else np.asarray(windows)
    got = X.read(windows)
    for k, w in enumerate(windows):
        ref = ds[int(w)]["input_fields"].numpy()  # float64 when a field is stored as float64
        np.testing.assert_array_equal(got[k][..., perm], ref.astype(np.float32))
    return X


def test_fast_reader_equals_well_dataset_scalar_vector_tensor(tmp_path):
    b = _bunch_tensor(n=5, T=7)
    path = write_well(b, tmp_path, "active", n_trajectories_per_file=2)  # files of 2, 2, 1 trajectories
    X = load_well(path, n_frames=3, stride=1, lazy=True).data
    n_per = 7 - 3 + 1
    last = [t * n_per + n_per - 1 for t in range(5)]  # the last window of every trajectory
    rng = np.random.default_rng(0)
    windows = np.concatenate([last, [0, len(X) - 1], rng.integers(0, len(X), 12)])
    _assert_matches_well_dataset(path, 3, windows)
    _assert_matches_well_dataset(path, 7)  # windows = whole trajectories
    # shuffled batch with repeats, in the requested order, against the Bunch
    idx = rng.permutation(np.repeat(np.arange(len(X)), 2))[:30]
    groups = np.repeat(np.arange(5), n_per)
    starts = np.tile(np.arange(n_per), 5)
    expect = np.stack([b.data[groups[i], starts[i] : starts[i] + 3] for i in idx])
    np.testing.assert_array_equal(X.read(idx), expect)
    np.testing.assert_array_equal(X[idx], expect)


def _rewrite_fields(path, edit):
    for f in _files(path):
        with h5py.File(f, "r+") as h:
            edit(h)


def test_fast_reader_equals_well_dataset_chunked_float64_shared_fields(tmp_path):
    """Fields stored chunked and compressed (read through HDF5), as float64, and a time-varying
    field shared by all trajectories of a file (sample_varying=False)."""
    b = _bunch_2d(n=5, T=9)
    path = write_well(b, tmp_path, "flow", n_trajectories_per_file=3)
    rng = np.random.default_rng(3)

    def edit(h):
        g = h["t0_fields"]
        tracer = g["tracer"][()]
        del g["tracer"]
        ds = g.create_dataset("tracer", data=tracer, chunks=(1, 2, 8, 4), compression="gzip")  # chunked, 2 frames
        ds.attrs.update(dim_varying=np.ones(2, bool), sample_varying=True, time_varying=True)
        vel = h["t1_fields/velocity"][()].astype(np.float64) + 1e-9  # not representable in float32
        del h["t1_fields/velocity"]
        ds = h["t1_fields"].create_dataset("velocity", data=vel)
        ds.attrs.update(dim_varying=np.ones(2, bool), sample_varying=True, time_varying=True)
        ds = g.create_dataset("forcing", data=rng.normal(size=(9, 8, 4)).astype(np.float32))
        ds.attrs.update(dim_varying=np.ones(2, bool), sample_varying=False, time_varying=True)
        g.attrs["field_names"] = np.array(["tracer", "pressure", "forcing"], dtype=h5py.string_dtype())
        del h.attrs["skphys_field_names"]

    _rewrite_fields(path, edit)
    X = _assert_matches_well_dataset(path, 4)
    assert X.field_names == ["tracer", "pressure", "forcing", "velocity_y", "velocity_x"]
    chunked = [f for f in X._files[0].fields if f.name == "tracer"][0]
    assert chunked.chunk_frames == 2
    # a window far from another one in a chunked field: separate reads, same values
    _assert_matches_well_dataset(path, 2, [0, 7, 1, 6, 38, 39])


def test_fast_reader_equals_well_dataset_dummy_file(tmp_path):
    d = tmp_path / "datasets" / "dummy" / "data" / "train"
    d.mkdir(parents=True)
    write_dummy_data(str(d / "a.hdf5"))
    write_dummy_data(str(d / "b.hdf5"))
    write_dummy_data(str(d / "0.h5"))  # the_well sorts *.h5 and *.hdf5 files together
    X = _assert_matches_well_dataset(tmp_path / "datasets" / "dummy", 4)
    assert [os.path.basename(f) for f in X.files] == ["0.h5", "a.hdf5", "b.hdf5"]


def test_time_varying_field_not_varying_in_space_is_refused(tmp_path):
    b = _bunch_1d(n=2, T=6)
    path = write_well(b, tmp_path, "waves")

    def edit(h):
        ds = h["t0_fields"].create_dataset("mean_u", data=np.zeros((2, 6), np.float32))
        ds.attrs.update(dim_varying=np.zeros(1, bool), sample_varying=True, time_varying=True)
        h["t0_fields"].attrs["field_names"] = np.array(["u", "v", "mean_u"], dtype=h5py.string_dtype())

    _rewrite_fields(path, edit)
    with pytest.raises(ValueError, match="'mean_u' does not vary along every axis"):
        load_well(path, n_frames=3)


def test_files_that_disagree_are_named(tmp_path):
    path = write_well(_bunch_1d(n=4), tmp_path, "waves", n_trajectories_per_file=2)
    _rewrite_fields(path, lambda h: h["t0_fields"].attrs.__setitem__("field_names", np.array(["u"], dtype=h5py.string_dtype())))
    with h5py.File(_files(path)[0], "r+") as h:
        h["t0_fields"].attrs["field_names"] = np.array(["u", "v"], dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=re.escape(os.path.basename(_files(path)[1])) + ".*channel_names"):
        load_well(path, n_frames=3)


def test_lazy_windows_files_removed_or_truncated_after_indexing(tmp_path):
    path = write_well(_bunch_1d(n=4, T=12, nx=64), tmp_path, "waves", n_trajectories_per_file=2)
    X = load_well(path, n_frames=4, lazy=True).data
    files = _files(path)
    os.remove(files[1])
    np.testing.assert_array_equal(X[0].shape, (4, 64, 2))  # the other file still reads
    with pytest.raises(FileNotFoundError, match=os.path.basename(files[1])):
        X[len(X) - 1]
    X = load_well(path, split="train", n_frames=4, lazy=True, max_trajectories=2).data
    with open(files[0], "r+b") as fh:
        fh.truncate(os.path.getsize(files[0]) - 4096)
    with pytest.raises(ValueError, match=os.path.basename(files[0])):
        X[len(X) - 1]


# --------------------------------------------------------------------------------------------------
# rank-2 tensor fields in the writer
# --------------------------------------------------------------------------------------------------


def test_tensor_fields_round_trip_and_open_in_the_well(tmp_path):
    b = _bunch_tensor(n=3, T=5)
    path = write_well(b, tmp_path, "active", n_trajectories_per_file=2)
    for f in _files(path):
        _check_well_format(f)
    with h5py.File(_files(path)[0], "r") as h:
        assert list(h["t0_fields"].attrs["field_names"]) == ["concentration", "pressure"]
        assert list(h["t1_fields"].attrs["field_names"]) == ["velocity"]
        assert list(h["t2_fields"].attrs["field_names"]) == ["D"]
        D = h["t2_fields/D"][()]
        assert D.shape == (2, 5, 6, 4, 2, 2)  # (n_traj, T, ny, nx, d, d), axes in dim_names order (y, x)
        ch = {c: i for i, c in enumerate(b.field_names)}
        for a, ia in (("y", 0), ("x", 1)):
            for c, ic in (("y", 0), ("x", 1)):
                np.testing.assert_array_equal(D[..., ia, ic], b.data[:2, ..., ch[f"D_{a}{c}"]])
    from skphys.datasets.well import WellField, WellFileMetadata, scan_file

    meta = scan_file(_files(path)[1])
    assert isinstance(meta, WellFileMetadata) and all(isinstance(f, WellField) for f in meta.fields)
    assert (meta.n_trajectories, meta.n_steps, meta.spatial_dims, meta.spatial_resolution) == (1, 5, ("y", "x"), (6, 4))
    assert [(f.name, f.order, f.shape) for f in meta.fields] == [
        ("concentration", 0, (1, 5, 6, 4)), ("pressure", 0, (1, 5, 6, 4)), ("velocity", 1, (1, 5, 6, 4, 2)),
        ("D", 2, (1, 5, 6, 4, 2, 2)),
    ]
    assert meta.channel_names[-4:] == ["D_yy", "D_yx", "D_xy", "D_xx"]
    assert meta.skphys_field_names == tuple(b.field_names)
    np.testing.assert_array_equal(meta.constant_scalars["alpha"], b.target[2:, 0])

    back = load_well(path, n_frames=5)
    assert back.field_names == b.field_names
    np.testing.assert_array_equal(back.data, b.data)
    assert load_well(path, n_frames=5, fields=["D"]).field_names == ["D_yy", "D_yx", "D_xy", "D_xx"]

    ds = WellDataset(path=path, well_split_name="train", n_steps_input=2, n_steps_output=1, use_normalization=False)
    assert ds.metadata.field_names[2] == ["D_yy", "D_yx", "D_xy", "D_xx"]
    np.testing.assert_array_equal(ds[0]["input_fields"].numpy()[..., -4:], b.data[0, :2][..., [1, 3, 4, 6]])

    stats = yaml.safe_load(open(os.path.join(path, "stats.yaml")))
    X = b.data.astype(np.float64)
    np.testing.assert_allclose(stats["mean"]["D"], [[X[..., 1].mean(), X[..., 3].mean()], [X[..., 4].mean(), X[..., 6].mean()]], rtol=1e-12)
    norm = WellDataset(
        path=path, well_split_name="train", n_steps_input=2, n_steps_output=1, use_normalization=True,
        normalization_type=ZScoreNormalization,
    )
    got = norm[0]["input_fields"].numpy()[..., -4:]
    mean = np.ravel(stats["mean"]["D"])
    std = np.ravel(stats["std"]["D"])
    np.testing.assert_allclose(got, (b.data[0, :2][..., [1, 3, 4, 6]] - mean) / std, rtol=1e-5, atol=1e-5)


def test_group_fields_rules():
    from skphys.datasets._well_write import _group_fields

    assert _group_fields(["D_xx", "D_xy", "D_yx", "D_yy", "v_x", "v_y", "c"], ("x", "y")) == [
        (2, "D", [0, 1, 2, 3]), (1, "v", [4, 5]), (0, "c", [6])
    ]
    # an incomplete tensor stays scalar channels; 1-D: D_xx is a tensor, u_x a vector
    assert _group_fields(["D_xx", "D_xy", "D_yy"], ("x", "y")) == [(0, "D_xx", [0]), (0, "D_xy", [1]), (0, "D_yy", [2])]
    assert _group_fields(["D_xx", "u_x"], ("x",)) == [(2, "D", [0]), (1, "u", [1])]
    names3 = [f"S_{a}{b}" for a in "zyx" for b in "zyx"]
    assert _group_fields(["vx", "vy"] + names3, ("z", "y", "x")) == [(0, "vx", [0]), (0, "vy", [1]), (2, "S", list(range(2, 11)))]
    with pytest.raises(ValueError, match="field name.*'D'"):
        _group_fields(["D_x", "D_y", "D_xx", "D_xy", "D_yx", "D_yy"], ("x", "y"))


# --------------------------------------------------------------------------------------------------
# processes, threads and shards
# --------------------------------------------------------------------------------------------------


def test_lazy_windows_in_forked_dataloader_workers(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    b = _bunch_1d(n=6, T=12, nx=16)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    X = load_well(path, n_frames=4, stride=2, lazy=True).data
    eager = np.asarray(X)  # the parent holds its handles open when the workers fork
    assert X.open_files
    loader = DataLoader(X, batch_size=5, num_workers=2, multiprocessing_context="fork")
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_array_equal(got, eager)
    # each batch is one sorted read (DataLoader calls __getitems__), returned in sampler order
    order = np.random.default_rng(0).permutation(len(X)).tolist()
    loader = DataLoader(X, batch_size=4, sampler=order, num_workers=2, multiprocessing_context="fork")
    np.testing.assert_array_equal(torch.cat(list(loader)).numpy(), eager[order])
    np.testing.assert_array_equal(X[[3, 0]], eager[[3, 0]])  # the parent's handles still work


@pytest.mark.slow
def test_lazy_windows_in_spawned_dataloader_worker(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    b = _bunch_1d(n=4, T=12, nx=16)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    X = load_well(path, n_frames=4, lazy=True).data
    eager = np.asarray(X)
    loader = DataLoader(X, batch_size=5, shuffle=False, num_workers=1, multiprocessing_context="spawn")
    np.testing.assert_array_equal(torch.cat(list(loader)).numpy(), eager)


def test_lazy_windows_after_fork_reopens(tmp_path):
    import multiprocessing as mp

    b = _bunch_1d(n=4, T=12, nx=16)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    X = load_well(path, n_frames=4, lazy=True).data
    X.read([0])  # the parent has file 0 open when it forks
    _FORKED["X"] = X  # inherited by the forked worker as is (not pickled)
    try:
        with mp.get_context("fork").Pool(1) as pool:
            before, after, batch = pool.apply(_child_reads, ([5, 1, 11],))
    finally:
        _FORKED.clear()
    assert before == []  # the inherited handles are not used
    assert after == list(X.files)  # it opened its own: file 0 (windows 1, 5) and file 1 (window 11)
    assert X.open_files == [X.files[0]]  # the parent's are unchanged
    np.testing.assert_array_equal(batch, X[[5, 1, 11]])


_FORKED = {}


def _child_reads(idx):
    X = _FORKED["X"]
    before = X.open_files
    batch = X.read(idx)
    return before, sorted(X.open_files), batch


def test_lazy_windows_threads(tmp_path):
    import threading

    b = _bunch_1d(n=6, T=16, nx=32)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)
    X = load_well(path, n_frames=4, stride=1, lazy=True).data
    eager = np.asarray(X)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(30):
                idx = rng.integers(0, len(X), 7)
                np.testing.assert_array_equal(X.read(idx), eager[idx])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_shard_indices_and_subset(tmp_path):
    from skphys.datasets import shard_indices

    b = _bunch_1d(n=8, T=12, nx=16)
    path = write_well(b, tmp_path, "waves", n_trajectories_per_file=2)  # 4 files
    X = load_well(path, n_frames=4, lazy=True).data  # 3 windows per trajectory, 24 windows
    eager = np.asarray(X)
    X.close()
    for W in (1, 2, 3, 5):
        shards = [shard_indices(X, r, W) for r in range(W)]
        np.testing.assert_array_equal(np.concatenate(shards), np.arange(24))  # a partition, in order
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        for r, idx in enumerate(shards):
            view = X.subset(idx)
            assert view.shape == (len(idx), 4, 16, 2)
            np.testing.assert_array_equal(view[:], eager[idx])
            np.testing.assert_array_equal(view.groups, X.groups[idx])
            files = sorted(set(X.file_of(idx).tolist()))
            assert sorted(view.open_files) == [X.files[f] for f in files]  # only its own files
            assert len(files) <= -(-4 // W) + 1
            view.close()
    # two ranks, four files: each rank opens exactly two
    assert X.file_of(shard_indices(X, 0, 2)).tolist() == [0] * 6 + [1] * 6
    # a shuffled subset reads in its own order; it pickles small
    idx = np.array([20, 3, 3, 11])
    view = pickle.loads(pickle.dumps(X.subset(idx)))
    np.testing.assert_array_equal(view.read([3, 0, 1]), eager[idx[[3, 0, 1]]])
    assert X.open_files == []  # the views share no handles with X
    assert shard_indices(np.zeros((5, 2)), 1, 2).tolist() == [3, 4]
    assert shard_indices(2, 2, 3).tolist() == []
    for args, exc in (((X, 2, 2), ValueError), ((X, -1, 2), ValueError), ((X, 0, 0), ValueError), ((X, 0.5, 2), TypeError)):
        with pytest.raises(exc, match="rank|world_size"):
            shard_indices(*args)


def test_read_validates_indices(lazy_setup):
    b, path, X, y, X_eager = lazy_setup
    np.testing.assert_array_equal(X.read(np.array([-1, 0])), X_eager[[-1, 0]])
    assert X.read([]).shape == (0, 4, 16, 2)
    with pytest.raises(IndexError, match="out of bounds"):
        X.read([18])
    with pytest.raises(TypeError, match="1-D array of integer"):
        X.read([[0, 1]])
    with pytest.raises(TypeError, match="1-D array of integer"):
        X.read([0.5])
    torch = pytest.importorskip("torch")
    pinned = torch.empty((3, 4, 16, 2))  # e.g. pin_memory=True on a CUDA machine
    assert X.read([7, 2, 7], out=pinned.numpy()) is not None
    np.testing.assert_array_equal(pinned.numpy(), X_eager[[7, 2, 7]])
    for bad in (np.empty((2, 4, 16, 2), np.float32), np.empty((3, 4, 16, 2)), np.empty((3, 4, 2, 16), np.float32).transpose(0, 1, 3, 2)):
        with pytest.raises(ValueError, match="out must be a writable C-contiguous float32 array of shape"):
            X.read([7, 2, 7], out=bad)


def test_read_frames_reads_only_the_crops(tmp_path, monkeypatch):
    b = _bunch_tensor(n=4, T=12)
    path = write_well(b, tmp_path, "active", n_trajectories_per_file=2)
    X = load_well(path, n_frames=8, stride=2, lazy=True).data  # 3 windows per trajectory, starts 0, 2, 4
    eager = np.asarray(X)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(X), 20)
    off = rng.integers(0, 8 - 3 + 1, 20)
    expect = np.stack([eager[i, o : o + 3] for i, o in zip(idx, off)])
    np.testing.assert_array_equal(X.read_frames(idx, off, 3), expect)
    out = np.empty_like(expect)
    assert X.read_frames(idx, off, 3, out=out) is out
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(X.read_frames([5], [0], 8), eager[[5]])  # a whole window
    assert X.read_frames([], [], 2).shape == (0, 2, 6, 4, 8)
    # a lone crop reads just its frames: window 4 = trajectory 1, start 2; frames 2+5 : 2+5+3
    calls = _count_reads(monkeypatch)
    X.read_frames([4], [5], 3)
    assert {c[1:] for c in calls} == {(1, 7, 10)}
    for args, exc, match in (
        (([0], [6], 3), ValueError, r"offsets must be in \[0, n_frames - length = 5\]"),
        (([0], [-1], 3), ValueError, "offsets must be in"),
        (([0, 1], [0], 3), ValueError, "one per index"),
        (([0], [0], 9), ValueError, "length must be in"),
        (([0], [0], 2.0), TypeError, "length must be an int"),
        (([[0]], [0], 2), TypeError, "1-D array of integer"),
    ):
        with pytest.raises(exc, match=match):
            X.read_frames(*args)


def test_fast_reader_is_much_faster_than_per_sample_reads(tmp_path):
    """A relative guard for the fast path (both measured here, now): a batch of 64 random windows
    read at once vs the same windows through the_well's WellDataset one by one."""
    b = _bunch_1d(n=20, T=64, nx=256)
    path = write_well(b, tmp_path, "waves")
    X = load_well(path, n_frames=16, stride=1, lazy=True).data
    ds = WellDataset(path=path, well_split_name="train", n_steps_input=16, n_steps_output=0, use_normalization=False)
    idx = np.random.default_rng(0).integers(0, len(X), 64)
    X.read(idx)  # open the file
    fast = min(_timed(lambda: X.read(idx)) for _ in range(3))
    slow = _timed(lambda: [ds[int(i)] for i in idx])
    assert slow > 20 * fast, (slow, fast)


def _timed(fn):
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --------------------------------------------------------------------------------------------------
# prefetch
# --------------------------------------------------------------------------------------------------


def _prefetch_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "skphys-prefetch"]


def test_prefetch_order_and_overlap():
    import time

    from skphys.datasets import prefetch

    produced = []

    def slow():
        for i in range(6):
            time.sleep(0.02)
            produced.append(i)
            yield i

    start = time.perf_counter()
    out = []
    for x in prefetch(slow(), depth=2):
        time.sleep(0.02)  # "compute" overlapping the next read
        out.append(x)
    elapsed = time.perf_counter() - start
    assert out == list(range(6))
    assert elapsed < 0.22, elapsed  # serial would take 0.24 s; overlapped about 0.14 s
    assert not _prefetch_threads()


def test_prefetch_depth_bounds_read_ahead():
    import time

    from skphys.datasets import prefetch

    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    p = prefetch(source(), depth=3)
    assert next(p) == 0
    time.sleep(0.2)
    # 1 consumed + 3 queued + at most 1 produced and waiting for room
    assert len(produced) <= 5, produced
    p.close()
    assert not _prefetch_threads()


def test_prefetch_propagates_exceptions():
    from skphys.datasets import prefetch

    def broken():
        yield 1
        yield 2
        raise KeyError("bad batch 3")

    got = []
    with pytest.raises(KeyError, match="bad batch 3") as info:
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1, 2]
    assert any(tb.name == "broken" for tb in info.traceback)  # the producer's frame is in the traceback
    assert not _prefetch_threads()


def test_prefetch_stops_cleanly_when_the_consumer_stops():
    import gc

    from skphys.datasets import prefetch

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    for x in prefetch(endless(), depth=2):
        if x == 3:
            break
    gc.collect()
    assert closed == [True] and not _prefetch_threads()

    with prefetch(endless()) as p:
        assert next(p) == 0
    assert closed == [True, True] and not _prefetch_threads()
    assert list(p) == []  # closed: exhausted

    def consumer_fails():
        for x in prefetch(endless()):
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        consumer_fails()
    gc.collect()
    assert closed == [True, True, True] and not _prefetch_threads()


def test_prefetch_of_lazy_batches_and_bad_arguments(lazy_setup):
    from skphys.datasets import prefetch

    b, path, X, y, X_eager = lazy_setup
    batches = [np.array([5, 1]), np.array([17, 0, 3])]
    for got, idx in zip(prefetch(X.read(i) for i in batches), batches):
        np.testing.assert_array_equal(got, X_eager[idx])
    with pytest.raises(ValueError, match="depth must be >= 1"):
        prefetch([1], depth=0)
    with pytest.raises(TypeError, match="depth must be an int"):
        prefetch([1], depth=1.5)
    with pytest.raises(TypeError, match="expected an iterable"):
        prefetch(3)
    assert not _prefetch_threads()


def test_tensor_and_vector_fields_in_1d(tmp_path):
    b = _bunch_1d(n=3, T=6, nx=8)
    b.data = np.concatenate([b.data, b.data[..., :1] * 2], axis=-1)
    b.field_names = ["D_xx", "u", "q_x"]
    path = write_well(b, tmp_path, "line")
    with h5py.File(_files(path)[0], "r") as h:
        assert h["t2_fields/D"].shape == (3, 6, 8, 1, 1) and h["t1_fields/q"].shape == (3, 6, 8, 1)
    _check_well_format(_files(path)[0])
    np.testing.assert_array_equal(load_well(path, n_frames=6).data, b.data)
    _assert_matches_well_dataset(path, 2)


_RSS_SCRIPT = """
import sys
import numpy as np
from skphys.datasets import load_well, prefetch


def peak_rss():  # this process' own peak (ru_maxrss would include the parent's, inherited across exec)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


X = load_well(sys.argv[1], n_frames=16, stride=4, lazy=True).data
EAGER = len(sys.argv) > 2
X.read(np.arange(64))
X.read_frames(np.arange(64), np.zeros(64, int), 8)
before = peak_rss()
batches = np.array_split(np.random.default_rng(0).permutation(len(X)), max(1, len(X) // 64))
total = 0
for batch in ([np.asarray(X)] if EAGER else prefetch(X.read(b) for b in batches)):
    total += batch.nbytes
for b in batches:
    total += X.read_frames(b, np.zeros(len(b), int), 8).nbytes
print(total, peak_rss() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from /proc (Linux)")
def test_lazy_reading_keeps_memory_bounded(tmp_path):
    """Read every window of a dataset (and crops of each) in batches of 64 with prefetch in a fresh
    process: its peak RSS grows by a few batches, not with the dataset (over 3x larger), since
    data are read with preadv into the batch, not mapped or cached."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    b = _bunch_1d(n=2, T=128, nx=512)
    b.data = rng.normal(size=(160, 128, 512, 1)).astype(np.float32)  # 42 MB
    b.target = rng.uniform(size=(160, 2))
    b.field_names = ["u"]
    path = write_well(b, tmp_path, "big", n_trajectories_per_file=40)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


    def run(*extra):
        res = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, path, *extra], capture_output=True, text=True, cwd=root, timeout=300)
        assert res.returncode == 0, res.stderr
        return map(int, res.stdout.split())

    total, growth = run()
    assert total > 3 * b.data.nbytes  # every window read once (windows overlap: stride 4 < 16 frames)
    # in flight at most: the consumer's batch, 2 queued, 1 being read, and one of crops
    budget = 6 * 64 * 16 * 512 * 4
    assert budget < b.data.nbytes / 3
    assert growth < budget, (growth, budget)
    _, eager_growth = run("eager")  # the measurement sees an in-memory copy
    assert eager_growth > 2 * b.data.nbytes, eager_growth


@pytest.mark.parametrize("seed", range(4))
def test_fast_reader_random_layouts_and_selections(tmp_path, seed):
    """Random file splits, window lengths, strides and channel selections (partial and reordered
    tensor components): read, read_frames and subset views equal slices of the written data."""
    rng = np.random.default_rng(seed)
    n, T = int(rng.integers(2, 7)), int(rng.integers(5, 14))
    b = _bunch_tensor(n=n, T=T, seed=seed)
    path = write_well(b, tmp_path, "a", n_trajectories_per_file=int(rng.integers(1, 4)))
    nf, stride = int(rng.integers(1, T + 1)), int(rng.integers(1, 4))
    sel = list(rng.permutation(b.field_names)[: int(rng.integers(1, 9))])
    X = load_well(path, n_frames=nf, stride=stride, fields=sel, lazy=True).data
    assert X.field_names == sel
    ch = [b.field_names.index(c) for c in sel]
    ref = np.stack([b.data[i, s : s + nf][..., ch] for i in range(n) for s in range(0, T - nf + 1, stride)])
    for _ in range(5):
        idx = rng.integers(0, len(X), int(rng.integers(1, 40)))
        np.testing.assert_array_equal(X.read(idx), ref[idx])
        length = int(rng.integers(1, nf + 1))
        off = rng.integers(0, nf - length + 1, len(idx))
        np.testing.assert_array_equal(X.read_frames(idx, off, length), np.stack([ref[i, o : o + length] for i, o in zip(idx, off)]))
        sub = rng.permutation(len(X))[: int(rng.integers(1, len(X) + 1))]
        j = rng.integers(0, len(sub), 10)
        np.testing.assert_array_equal(X.subset(sub).read(j), ref[sub][j])
