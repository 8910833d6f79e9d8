"""
Writing and reading The Well's format
=====================================

`The Well <https://polymathic-ai.org/the_well/>`_ stores physics simulations
as HDF5 files with a documented layout. :func:`~skphys.datasets.write_well`
writes simulated trajectories in that layout (with the ``stats.yaml``
normalization file), and :func:`~skphys.datasets.load_well` reads windows of
frames from it, from the published datasets as well as from your own, eagerly
or lazily. Here a few Kuramoto-Sivashinsky trajectories make the round trip.
"""

# %%
# Simulate and write
# ------------------
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skphys.datasets import load_well, make_kuramoto_sivashinsky, write_well

sim = make_kuramoto_sivashinsky(6, n_points=64, length=16 * math.pi,
                                n_frames=48, t_max=12.0, random_state=0,
                                device="cpu")
print(sim.data.shape, sim.field_names, sim.target_names)

root = tempfile.mkdtemp()
path = write_well(sim, root, "ks_small", split="train")
for p in sorted(Path(path).rglob("*")):
    print(p.relative_to(root))

# %%
# Read windows back
# -----------------
# Windows of 16 frames every 16 frames: 3 per trajectory. ``target`` holds
# each window's parameters and ``groups`` its trajectory (for grouped
# cross-validation).
ds = load_well(path, split="train", n_frames=16)
print(ds.data.shape, ds.target_names, ds.groups)
np.testing.assert_allclose(ds.data[1], sim.data[0, 16:32], rtol=1e-6)
np.testing.assert_allclose(ds.target[::3], sim.target)

# %%
# Lazily: ``lazy=True`` returns a :class:`~skphys.datasets.LazyWindows` that
# reads windows on demand, for datasets larger than memory. Every skphys
# estimator accepts it as ``X``.
lazy = load_well(path, n_frames=16, lazy=True)
print(lazy.data)
window = lazy.data[4]  # trajectory 1, frames 16-31

fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True,
                         layout="constrained")
x = sim.coords[0]
extent = [x[0], x[-1], lazy.time[-1], lazy.time[0]]
panels = [(sim.data[1, 16:32, :, 0], "simulated: trajectory 1, frames 16-31"),
          (window[..., 0], "read back lazily: window 4")]
for ax, (img, title) in zip(axes, panels):
    im = ax.imshow(img, aspect="auto", extent=extent, cmap="RdBu_r")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x")
axes[0].set_ylabel("time within the window")
fig.colorbar(im, ax=axes, label="u")
plt.show()
