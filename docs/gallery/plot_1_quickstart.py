"""
Quickstart: a shear flow's Reynolds and Schmidt numbers
=======================================================

Simulate small 2-D shear flows, pretrain a :class:`~skphys.JEPAEmbedder` on
them without labels, fit an :class:`~skphys.AttentiveProbeRegressor` on its
frozen embeddings, and compare on held-out flows with the non-learned baseline
:class:`~skphys.SpectralStatsFeatures` + ridge. The parity plot is a
:class:`~skphys.display.ParameterParityDisplay`.

Everything is tiny here so that it runs in seconds on a CPU;
``examples/quickstart.py`` is the full-size version (its recorded results are
in the README).
"""

# %%
# Data
# ----
# 2-D shear flows (incompressible Navier-Stokes with a passive tracer),
# channels-last ``(n, T, ny, nx, C)``; the targets are the Reynolds and
# Schmidt numbers.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skphys import AttentiveProbeRegressor, JEPAEmbedder, SpectralStatsFeatures
from skphys.datasets import make_shear_flow
from skphys.display import ParameterParityDisplay

sim = make_shear_flow(48, n_points=(32, 32), n_frames=16, t_max=4.0,
                      precision="single", random_state=0)
print(sim.data.shape, sim.field_names, sim.target_names)
X_train, X_test, y_train, y_test = train_test_split(
    sim.data, sim.target, test_size=0.25, random_state=0)

# %%
# Pretraining and probe
# ---------------------
# Self-supervised pretraining on the training flows only (``y`` is not
# used), then the probe on the frozen embeddings, regressing log10 of both
# numbers.
jepa = JEPAEmbedder(n_frames=8, widths=(8, 16, 32, 32), depths=(1, 1, 1, 1),
                    predictor_width=32, max_epochs=3, batch_size=8,
                    random_state=0).fit(X_train)
probe = AttentiveProbeRegressor(target_transform="log10", mlp_ratio=2,
                                max_epochs=60, random_state=0)
probe.fit(jepa.transform(X_train), y_train)
z_jepa = probe.predict_standardized(jepa.transform(X_test))

# %%
# Baseline
# --------
# The baseline sees the same frames and predicts in the same standardized
# log10 space.
baseline = make_pipeline(SpectralStatsFeatures(n_frames=8), StandardScaler(),
                         RidgeCV(np.logspace(-3, 3, 13)))
baseline.fit(X_train, np.log10(y_train))
z_base = (baseline.predict(X_test) - probe.y_mean_) / probe.y_scale_
z_true = probe.transform_target(y_test)

for name, z in [("JEPA + probe", z_jepa), ("spectrum + ridge", z_base),
                ("training mean", 0 * z_true)]:
    mse = np.mean((z - z_true) ** 2)
    print(f"{name:16s} MSE on standardized log10 targets: {mse:.3f}")

# %%
# Parity plot
# -----------
# One display per model, drawn on the same axes; R^2 per target is in the
# legend.
names = ["log10 Re", "log10 Sc"]
disp = ParameterParityDisplay.from_predictions(
    z_true, z_jepa, target_names=names, name="JEPA + probe")
disp = ParameterParityDisplay.from_predictions(
    z_true, z_base, target_names=names, name="spectrum + ridge", ax=disp.ax_,
    scatter_kwargs={"marker": "s"})
plt.show()

# %%
# On this small, clean simulated flow the power spectrum is a direct readout
# of viscosity and diffusivity, and the baseline is hard to beat; skphys
# prints it so you see when self-supervision is not worth it on your data.
