"""Run an estimator fit as one rank of a gloo group (torchrun's environment), for the tests.

``python _distributed_worker.py RANK WORLD PORT CASE OUT``: fits the estimator of ``CASE`` (see
``CASES``) and saves its parameters and history to ``OUT``.
"""

import os
import sys

import numpy as np
import torch

import skphys

torch.set_num_threads(1)


def data(kind):
    rng = np.random.default_rng(0)
    if kind == "2d":
        x = rng.normal(size=(12, 8, 8, 8, 2)).astype("float32")
        return np.cumsum(x, axis=1) * 0.3  # correlated in time
    t = np.linspace(0, 1, 40)[:, None]
    xs = np.linspace(0, 2 * np.pi, 36, endpoint=False)[None, :]
    speed = rng.uniform(0.5, 2.0, size=(8, 1, 1))
    X = np.sin(xs[None] - 4 * speed * t[None]) + 0.05 * rng.normal(size=(8, 40, 36))
    return X[..., None].astype("float32")


def make(case):
    if case == "jepa":
        est = skphys.JEPAEmbedder(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, input_noise=0.1,
                           max_epochs=3, batch_size=4, lr=1e-3, device="cpu", random_state=0)
        return est, data("2d"), None
    if case == "videomae":
        est = skphys.VideoMAEEmbedder(n_frames=4, patch_size=4, embed_dim=12, depth=1, n_heads=2, decoder_embed_dim=6,
                               decoder_depth=1, decoder_n_heads=1, max_epochs=3, batch_size=4, lr=1e-3,
                               device="cpu", random_state=0)
        return est, data("2d"), None
    if case == "vae":
        est = skphys.DynamicsVAE(encoder_crop=(17, 17), decoder_crop=16, rollout_steps=3, hidden_channels=4,
                          encoder_dilations=(1, 1, 2, 4), max_epochs=3, batch_size=4, lr=1e-3, device="cpu",
                          random_state=0)
        return est, data("1d"), None
    if case == "mpp":
        est = skphys.MPPEmbedder(n_frames=3, patch_size=4, embed_dim=8, depth=1, n_heads=2, max_epochs=3, batch_size=4,
                                 lr=1e-3, device="cpu", random_state=0)
        return est, data("2d"), None
    if case == "disco":
        # lr 1e-5: many hypernetwork-head gradients sit at rounding level (the adaptive solver's
        # sums differ in the last bits between 1 and 2 ranks), and Adam turns rounding noise into
        # steps of size lr; the losses agree exactly
        est = skphys.DISCOEmbedder(n_frames=3, patch_size=4, embed_dim=8, depth=1, n_heads=2, operator_width=4,
                                   operator_groups=2, max_epochs=2, batch_size=4, lr=1e-5, device="cpu",
                                   random_state=0)
        return est, data("2d"), None
    if case == "finetune":  # MPP's output head is not in the token path: frozen, or DDP fails
        from sklearn.frozen import FrozenEstimator

        X = data("2d")
        mpp = skphys.MPPEmbedder(n_frames=3, patch_size=4, embed_dim=8, depth=1, n_heads=2, max_epochs=1,
                                 batch_size=4, lr=1e-3, device="cpu", random_state=0).fit(X)
        est = skphys.FineTunedRegressor(FrozenEstimator(mpp), probe=skphys.AttentiveProbeRegressor(n_heads=2),
                                        max_epochs=2, batch_size=4, lr=1e-3, device="cpu", random_state=0)
        return est, X, X.std(axis=(1, 2, 3, 4))
    if case == "probe":
        rng = np.random.default_rng(1)
        X = rng.normal(size=(24, 3, 8)).astype("float32")
        y = X.mean(axis=(1, 2))
        return skphys.AttentiveProbeRegressor(mlp_ratio=1, n_heads=2, max_epochs=3, batch_size=8, device="cpu",
                                       random_state=0), X, y
    raise ValueError(case)


def fitted_state(est):
    out = {}
    for name, value in vars(est).items():
        if name.endswith("_") and isinstance(value, torch.nn.Module):
            for k, v in value.state_dict().items():
                out[f"{name}.{k}"] = v.detach().clone()
    out["history_loss"] = torch.tensor([r["loss"] for r in est.history_])
    return out


if __name__ == "__main__":
    rank, world, port, case, path = sys.argv[1:6]
    if rank == "torchrun":  # launched by torchrun: its environment says who we are
        world, path = os.environ["WORLD_SIZE"], path.replace("RANK", os.environ["RANK"])
    else:
        os.environ.update(RANK=rank, WORLD_SIZE=world, LOCAL_RANK=rank, MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    est, X, y = make(case)
    if int(world) > 1:
        est.set_params(batch_size=est.batch_size)  # the global batch
    est.fit(X, y)
    if case == "jepa":  # a second fit in the same script (a Pipeline's probe) reuses the group
        probe = skphys.AttentiveProbeRegressor(mlp_ratio=1, n_heads=2, max_epochs=2, batch_size=4, device="cpu",
                                               random_state=0)
        probe.fit(est.transform(X), X.mean(axis=(1, 2, 3, 4)))
    import pickle

    pickle.loads(pickle.dumps(est))  # pickles without a process group
    torch.save(fitted_state(est), path)
