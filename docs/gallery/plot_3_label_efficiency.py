"""
Label efficiency: error against the labelled fraction
=====================================================

How much labelled data does a probe on a representation need? The JEPA
paper's Table 2 probes frozen encoders with 10%, 50% and 100% of the labels.
In scikit-learn terms that is a grid search over
:class:`~skphys.AttentiveProbeRegressor`'s ``train_fraction`` (crossed with
the probe's ``random_state`` for a spread over seeds), scored on a fixed
held-out split. :class:`~skphys.display.LabelEfficiencyDisplay` runs it and
draws the held-out MSE against the fraction.

Two representations of the same shear flows are probed: the tokens of a
(tiny) pretrained :class:`~skphys.JEPAEmbedder` and the non-learned
:class:`~skphys.SpectralStatsFeatures`. ``examples/label_efficiency.py`` is
the full protocol (a ``Pipeline`` with a
:class:`~sklearn.frozen.FrozenEstimator` embedder, cached embeddings, several
windows per flow).
"""

# %%
# Representations, computed once
# ------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import PredefinedSplit
from sklearn.preprocessing import StandardScaler

from skphys import AttentiveProbeRegressor, JEPAEmbedder, SpectralStatsFeatures
from skphys.datasets import make_shear_flow
from skphys.display import LabelEfficiencyDisplay

X, y = make_shear_flow(64, n_points=(32, 32), n_frames=16, t_max=4.0,
                       precision="single", random_state=1, return_X_y=True)
n_train = 48  # the last 16 flows are held out
train = slice(0, n_train)
jepa = JEPAEmbedder(n_frames=8, widths=(8, 16, 32, 32), depths=(1, 1, 1, 1),
                    predictor_width=32, max_epochs=3, batch_size=8,
                    random_state=0).fit(X[train])
tokens = jepa.transform(X)  # (n, n_tokens, width)
features = SpectralStatsFeatures(n_frames=8).fit(X[train]).transform(X)
features = StandardScaler().fit(features[train]).transform(features)
features = features.astype(np.float32)
# targets: log10(Re), log10(Sc), standardized with the training statistics
# (the paper's metric is the MSE in this space; predicting the mean scores 1)
z = StandardScaler().fit(np.log10(y[train])).transform(np.log10(y))
print(tokens.shape, features.shape)

# %%
# The search
# ----------
# ``PredefinedSplit``: train on the first 48 flows (or a fraction of them),
# score on the last 16. The score is ``neg_mean_squared_error`` on the
# standardized targets, negated back by the display.
split = PredefinedSplit(np.r_[np.full(n_train, -1), np.zeros(16, int)])
probe = AttentiveProbeRegressor(mlp_ratio=2, max_epochs=30)
fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
for name, Z in [("JEPA tokens", tokens), ("spectral features", features)]:
    disp = LabelEfficiencyDisplay.from_estimator(
        probe, Z, z, fractions=[0.125, 0.5, 1.0], param_name="train_fraction",
        param_grid={"random_state": [0, 1]}, cv=split, name=name, ax=ax,
        score_name="held-out MSE (standardized)")
    print(name, disp.scores_mean.round(3))
plt.show()

# %%
# At this size (3 pretraining epochs on 48 flows) the JEPA tokens are barely
# trained and the spectral features, which read the viscosity and diffusivity
# off the power spectrum, are better; the full-size comparison is in the user
# guide. The error bars are the standard deviation over the two probe seeds
# (``n_scores`` per fraction); the fitted search is kept in ``disp.search_``.
print(disp.n_scores, disp.search_.cv_results_["params"][:2])
