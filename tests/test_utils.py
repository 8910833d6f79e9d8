"""Atomic writers: complete file or none, old file intact on failure, no temporary left behind."""

import os
import pickle
import stat

import numpy as np
import pytest

from skphys.utils import (
    atomic_path,
    atomic_pickle,
    atomic_savefig,
    atomic_savez,
    atomic_write_bytes,
    atomic_write_text,
)


def _only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_text_bytes_roundtrip_and_overwrite(tmp_path):
    p = atomic_write_text(tmp_path / "a.md", "first\r\nline ü\n")
    assert p.read_bytes() == "first\r\nline ü\n".encode()  # written as given, utf-8
    atomic_write_text(p, "second")
    assert p.read_text() == "second"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert _only(tmp_path) == ["a.md", "b.bin"]


def test_failure_keeps_old_file_and_removes_temporary(tmp_path):
    p = tmp_path / "model.pkl"
    atomic_pickle({"ok": 1}, p)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        atomic_pickle({"bad": lambda x: x}, p)  # lambdas cannot be pickled
    with open(p, "rb") as fh:
        assert pickle.load(fh) == {"ok": 1}
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    with open(p, "rb") as fh:
        assert pickle.load(fh) == {"ok": 1}
    assert _only(tmp_path) == ["model.pkl"]


def test_temporary_is_in_same_directory_with_same_suffix(tmp_path):
    with atomic_path(tmp_path / "fig.svg") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".svg" and tmp.exists()
        assert not (tmp_path / "fig.svg").exists()  # nothing under the final name before success
        tmp.write_text("<svg/>")
    assert (tmp_path / "fig.svg").read_text() == "<svg/>"


def test_permissions_like_a_new_file_or_the_replaced_one(tmp_path):
    p = atomic_write_text(tmp_path / "t.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    os.chmod(p, 0o640)
    atomic_write_text(p, "y")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_missing_directory_and_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*make_parents"):
        atomic_write_text(tmp_path / "no" / "such" / "a.txt", "x")
    assert _only(tmp_path) == []
    p = atomic_write_text(tmp_path / "no" / "such" / "a.txt", "x", make_parents=True)
    assert p.read_text() == "x"
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path / "no", "x")
    with pytest.raises(TypeError, match="path must be"):
        atomic_write_text(3, "x")
    with pytest.raises(TypeError, match="text must be a str"):
        atomic_write_text(tmp_path / "c.txt", b"x")
    assert not (tmp_path / "c.txt").exists()


def test_savez_exact_name_and_object_arrays_refused(tmp_path):
    p = atomic_savez(tmp_path / "cache.tmp.data", X=np.arange(6.0).reshape(2, 3), names=np.array(["a", "b"]))
    assert _only(tmp_path) == ["cache.tmp.data"]  # no ".npz" appended
    with np.load(p, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["X"], np.arange(6.0).reshape(2, 3))
        assert z["names"].tolist() == ["a", "b"]
    atomic_savez(tmp_path / "c.npz", compressed=True, y=np.zeros(1000))
    assert (tmp_path / "c.npz").stat().st_size < 1000
    with pytest.raises(TypeError, match="dtype object"):
        atomic_savez(tmp_path / "d.npz", bad=np.array([{}, None], dtype=object))
    with pytest.raises(ValueError, match="at least one"):
        atomic_savez(tmp_path / "e.npz")
    assert sorted(_only(tmp_path)) == ["c.npz", "cache.tmp.data"]


def test_savefig_formats_and_failure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    try:
        assert atomic_savefig(fig, tmp_path / "a.png", dpi=30).read_bytes()[:4] == b"\x89PNG"
        assert b"<svg" in atomic_savefig(fig, tmp_path / "a.svg").read_bytes()[:400]
        assert atomic_savefig(fig, tmp_path / "noext", format="pdf").read_bytes()[:4] == b"%PDF"
        with pytest.raises(ValueError, match="extension"):
            atomic_savefig(fig, tmp_path / "b")
        with pytest.raises(ValueError):
            atomic_savefig(fig, tmp_path / "c.notaformat")
        with pytest.raises(TypeError, match="Figure"):
            atomic_savefig(ax.lines[0], tmp_path / "d.png")
    finally:
        plt.close(fig)
    assert _only(tmp_path) == ["a.png", "a.svg", "noext"]
