"""GridSearchCV on joblib's dask backend (dask.distributed, the optional ``dask`` extra): each
candidate is a single-device fit on a worker, and the search gives what a serial one gives."""

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")


def test_grid_search_on_a_local_dask_cluster_equals_the_serial_search():
    import joblib
    from sklearn.model_selection import GridSearchCV

    from skphys import AttentiveProbeRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 3, 8)).astype("float32")
    y = X.mean(axis=(1, 2)) + 0.1 * X[:, 0, 0]
    probe = AttentiveProbeRegressor(mlp_ratio=1, n_heads=2, max_epochs=4, batch_size=16, device="cpu", random_state=0)
    grid = {"train_fraction": [0.5, 1.0], "lr": [1e-3, 3e-3]}
    serial = GridSearchCV(probe, grid, cv=2).fit(X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            with joblib.parallel_backend("dask"):
                on_dask = GridSearchCV(probe, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6)
    assert on_dask.best_params_ == serial.best_params_
