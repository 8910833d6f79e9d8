"""The two new built-in systems (Rayleigh-Benard, active matter) through The Well's format and the CLI."""

import glob
import os

import h5py
import numpy as np
import pytest
from the_well.data import WellDataset

from skphys.datasets import load_well, make_system, write_well
from skphys.datasets.__main__ import main

TINY = {
    "rayleigh_benard": dict(n_points=(9, 16), n_frames=5, t_max=2.0, length=2.0, perturbation=1e-2),
    "active_matter": dict(n_points=16, n_frames=5, t_max=0.5),
}


def _flat_names(metadata):
    return [name for group in metadata.field_names.values() for name in group]


@pytest.mark.parametrize("name", sorted(TINY))
def test_round_trip_through_the_well(tmp_path, name):
    b = make_system(name, 3, random_state=0, device="cpu", **TINY[name])
    path = write_well(b, tmp_path, name)
    files = glob.glob(os.path.join(path, "data", "train", "*.hdf5"))
    assert len(files) == 1
    with h5py.File(files[0], "r") as f:
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 3
        assert [f["boundary_conditions"][k].attrs["bc_type"] for k in sorted(f["boundary_conditions"])]
        for p in b.target_names:
            assert p in f.attrs["simulation_parameters"]
    ds = WellDataset(path=path, well_split_name="train", n_steps_input=2, n_steps_output=1, use_normalization=False)
    names = _flat_names(ds.metadata)
    assert sorted(names) == sorted(b.field_names)
    order = [b.field_names.index(n) for n in names]
    sample = ds[0]
    np.testing.assert_array_equal(sample["input_fields"].numpy(), b.data[0, :2][..., order])
    np.testing.assert_array_equal(sample["output_fields"].numpy(), b.data[0, 2:3][..., order])
    np.testing.assert_allclose(sample["constant_scalars"].numpy(), b.target[0], rtol=1e-6)
    bc = sample["boundary_conditions"].numpy()
    if name == "rayleigh_benard":
        assert bc.tolist() == [[0, 0], [2, 2]]  # (y: wall, x: periodic) in The Well's codes
        # the uniform rows include the walls; coordinates survive the round trip
        np.testing.assert_allclose(sample["space_grid"].numpy()[:, 0, 0], b.coords[0], rtol=1e-6)
    else:
        assert bc.tolist() == [[2, 2], [2, 2]]
    # and back through skphys' own reader: same channels (by name), parameters, walls and grid
    back = load_well(path, n_frames=5)
    assert sorted(back.field_names) == sorted(b.field_names) and back.target_names == b.target_names
    np.testing.assert_array_equal(back.data[..., [back.field_names.index(n) for n in b.field_names]], b.data)
    np.testing.assert_allclose(back.target, b.target, rtol=1e-12)
    assert back.boundary_conditions == dict(b.boundary_conditions)
    np.testing.assert_allclose(back.coords[0], b.coords[0])


@pytest.mark.parametrize("name", sorted(TINY))
def test_command_line_writes_the_new_systems(tmp_path, name, capsys):
    args = [name, "--n-samples", "2", "--root", str(tmp_path), "--seed", "1", "--device", "cpu", "--quiet"]
    for key, value in TINY[name].items():
        args += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert main(args) == 0
    assert f"wrote 2 {name} trajectories" in capsys.readouterr().out
    path = os.path.join(str(tmp_path), "datasets", name)
    ds = WellDataset(path=path, well_split_name="train", n_steps_input=1, n_steps_output=1, use_normalization=False)
    assert len(ds) == 2 * 4
