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
