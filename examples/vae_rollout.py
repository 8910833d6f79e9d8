"""DynamicsVAE as a learned propagator (PDE-VAE paper, Fig. 6 and Fig. 11).

``rmse``: rollout RMSE per time step on the (noiseless, periodic) test set, against a numerical
baseline given the *true* parameters: second-order finite differences on the data's own grid,
integrated with ETDRK4 at the data's time step (for convection-diffusion this is the exact
exponential of the finite-difference operator), as in the paper's Fig. 6.

``wall``: Fig. 11. A model trained on periodic Kuramoto-Sivashinsky data runs, without
retraining, on a trajectory with walls (u = u_xx = 0 at both ends), by switching the decoder's
padding to a constant 0. The wall trajectory is simulated exactly as the odd extension of a
periodic one on twice the domain.

Models come from ``examples/vae_parameters.py`` (``--model PATH`` to its ``model_*.pkl``) or are
trained here with the same settings (``--quick`` / paper scale, ``--epochs``, ``--n-train``).

    python examples/vae_rollout.py rmse --system ks --quick
    python examples/vae_rollout.py wall --quick
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))

from vae_parameters import (  # noqa: E402
    SCALES,
    add_model_arguments,
    add_run_arguments,
    build_model,
    model_overrides,
    simulate,
)

from skphys import ETDRK4, resolve_device  # noqa: E402
from skphys.display import RolloutErrorDisplay  # noqa: E402
from skphys.metrics import rollout_rmse  # noqa: E402
from skphys.utils import atomic_savefig, atomic_savez  # noqa: E402

# ----------------------------------------------------------------------------- FD baseline


def _fd_symbols(n, h, device):
    """Fourier symbols of the 2nd-order central differences d/dx and d2/dx2 on a periodic grid."""
    theta = torch.as_tensor(2 * np.pi * np.fft.fftfreq(n), dtype=torch.float64, device=device)
    d1 = 1j * torch.sin(theta) / h
    d2 = -(4.0 / h**2) * torch.sin(theta / 2) ** 2
    return d1.to(torch.complex128), d2.to(torch.complex128)


# Longest ETDRK4 step of the baseline. KS: the paper's frame spacing. NLS: an eighth of it. The
# focusing NLS (kappa < 0) grows sharp peaks, and at the paper's spacing the explicit treatment
# of kappa |psi|^2 psi loses up to 16% of the conserved mass over 79 quick frames (6% at half,
# 0.8% at a quarter, 6e-5 at an eighth); one step across the quick frames (4x the paper's
# spacing) blows up. Convection-diffusion is integrated exactly, with any step.
BASELINE_MAX_DT = {"ks": 32 * math.pi / 256, "nls": math.pi / 256 / 8}


def baseline_substeps(system, dt):
    """ETDRK4 steps per frame of spacing ``dt`` for the baseline."""
    if system not in BASELINE_MAX_DT:
        return 1
    return max(1, math.ceil(dt / BASELINE_MAX_DT[system] - 1e-9))


def fd_etdrk4_rollout(system, X0, params, dx, dt, n_steps, device="cpu", substeps=1):
    """Propagate initial states with the finite-difference ETDRK4 baseline.

    Parameters
    ----------
    system : {"ks", "nls", "cd"}
    X0 : ndarray (n, *space, C)
    params : ndarray (n, n_params) the true parameters (gamma; kappa; D, vx, vy)
    dx, dt : float
        Grid spacing and the time between frames.
    n_steps : int
        Frames to produce.
    substeps : int, default=1
        ETDRK4 steps of ``dt / substeps`` per frame.

    Returns
    -------
    ndarray (n, n_steps, *space, C)
    """
    dev = resolve_device(device)
    p = torch.as_tensor(np.asarray(params, dtype=np.float64), device=dev)
    h = dt / substeps
    if system == "ks":
        u = torch.as_tensor(X0[..., 0], dtype=torch.float64, device=dev)
        d1, d2 = _fd_symbols(u.shape[-1], dx, dev)
        L = -d2[None] - p[:, :1] * d2[None] ** 2  # u_t = -u_xx - gamma u_xxxx - (u^2/2)_x
        stepper = ETDRK4(L, h, lambda v: -0.5 * d1 * torch.fft.fft(torch.fft.ifft(v).real ** 2))
        v = torch.fft.fft(u)
        out = []
        for _ in range(n_steps):
            v = stepper.advance(v, substeps)
            out.append(torch.fft.ifft(v).real)
        return torch.stack(out, 1)[..., None].cpu().numpy().astype(np.float32)
    if system == "nls":
        psi = torch.as_tensor(X0[..., 0] + 1j * X0[..., 1], dtype=torch.complex128, device=dev)
        _, d2 = _fd_symbols(psi.shape[-1], dx, dev)
        L = (0.5j * d2)[None].expand(psi.shape[0], -1)  # i psi_t = -psi_xx / 2 + kappa |psi|^2 psi
        kappa = p[:, :1]

        def N(v):
            q = torch.fft.ifft(v)
            return -1j * kappa * torch.fft.fft(q.abs() ** 2 * q)

        stepper = ETDRK4(L, h, N)
        v = torch.fft.fft(psi)
        out = []
        for _ in range(n_steps):
            v = stepper.advance(v, substeps)
            q = torch.fft.ifft(v)
            out.append(torch.stack([q.real, q.imag], -1))
        return torch.stack(out, 1).cpu().numpy().astype(np.float32)
    if system == "cd":
        u = torch.as_tensor(X0[..., 0], dtype=torch.float64, device=dev)  # (n, ny, nx)
        d1y, d2y = _fd_symbols(u.shape[-2], dx, dev)
        d1x, d2x = _fd_symbols(u.shape[-1], dx, dev)
        D, vx, vy = (p[:, i, None, None] for i in range(3))
        L = D * (d2y[:, None] + d2x[None, :]) - (vx * d1x[None, :] + vy * d1y[:, None])
        E = torch.exp(dt * L)  # linear: ETDRK4 is the exact exponential
        v = torch.fft.fft2(u)
        out = []
        for _ in range(n_steps):
            v = E * v
            out.append(torch.fft.ifft2(v).real)
        return torch.stack(out, 1)[..., None].cpu().numpy().astype(np.float32)
    raise ValueError(f"unknown system {system!r}")


# ----------------------------------------------------------------------------- KS with walls


def ks_with_walls(n, gamma, n_points, length, n_frames, dt, seed, substeps=8):
    """KS on [0, length] with u = u_xx = 0 at both walls, as the odd extension of a periodic
    solution on [0, 2 length) (pseudo-spectral ETDRK4). Returns (n, n_frames, n_points - 1, 1)
    holding the interior points x_1 .. x_{n_points - 1} (the walls are x_0 and x_{n_points})."""
    rng = np.random.default_rng(seed)
    m = 2 * n_points
    k = torch.as_tensor(2 * np.pi * np.fft.fftfreq(m, d=2 * length / m), dtype=torch.float64)
    x = np.arange(n_points + 1) * length / n_points
    # smooth random odd initial states: sine series with a Gaussian envelope, RMS 1
    modes = np.arange(1, n_points)
    kk = modes * np.pi / length
    kr = rng.uniform(4 * np.pi / length, (n_points / 8) * np.pi / length, size=(n, 1))
    amp = rng.normal(size=(n, modes.size)) * np.exp(-(kk**2) / (2 * kr**2))
    u0 = amp @ np.sin(np.outer(kk, x))  # (n, n_points + 1), zero at both walls
    u0 /= np.sqrt((u0**2).mean(axis=1, keepdims=True))
    full = np.concatenate([u0, -u0[:, -2:0:-1]], axis=1)  # odd extension, (n, 2 n_points)
    g = torch.as_tensor(np.broadcast_to(np.asarray(gamma, dtype=np.float64).reshape(-1, 1), (n, 1)).copy())
    L = k**2 - g * k**4
    h = dt / substeps
    stepper = ETDRK4(L, h, lambda v: -0.5j * k * torch.fft.fft(torch.fft.ifft(v).real ** 2))
    v = torch.fft.fft(torch.as_tensor(full))
    frames = [full]
    for _ in range(n_frames - 1):
        v = stepper.advance(v, substeps)
        frames.append(torch.fft.ifft(v).real.numpy())
    traj = np.stack(frames, 1)[:, :, 1:n_points]
    return traj[..., None].astype(np.float32)


# ----------------------------------------------------------------------------- main


def get_model(args, system, scale, train_data=None):
    if args.model:
        with open(args.model, "rb") as fh:
            return pickle.load(fh)
    cfg = SCALES[system][scale]
    epochs = args.epochs or cfg["epochs"]
    if train_data is None:
        train_data = simulate(system, args.n_train or cfg["n_train"], 0.0, args.seed, scale, args.device).data
    return build_model(system, scale, epochs, args.device, args.seed, args.verbose, model_overrides(args)).fit(train_data)


def cmd_rmse(args, scale, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from _record import record

    system = args.system
    cfg = SCALES[system][scale]
    test = simulate(system, args.n_test or cfg["n_test"], 0.0, args.seed + 1000, scale, args.device)
    model = get_model(args, system, scale)
    X = test.data
    n_steps = X.shape[1] - 1
    pred = model.predict(X[:, 0], n_steps, context=X, boundary="periodic")
    dx = float(test.coords[-1][1] - test.coords[-1][0])
    sub = baseline_substeps(system, float(test.dt))
    base = fd_etdrk4_rollout(system, X[:, 0], test.target, dx, float(test.dt), n_steps, args.device, substeps=sub)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    disp = RolloutErrorDisplay.from_predictions(
        X[:, 1:], {"DynamicsVAE": pred}, y_baseline=base, baseline_name="FD + ETDRK4 (true params)",
        horizon=model.rollout_steps_, ax=ax, baseline_kwargs={"color": "r"},
    )
    r_model, r_base = disp.lines_[0].get_ydata(), disp.baseline_line_.get_ydata()
    t = np.arange(1, n_steps + 1)
    ax.set_title(f"{system}: rollout RMSE")
    fig.tight_layout()
    atomic_savefig(fig, out / f"fig6_rmse_{system}.png", dpi=120)
    plt.close(fig)
    marks = sorted({1, model.rollout_steps_, n_steps // 2, n_steps} & set(t.tolist()))
    lines = ["| system | step | model RMSE | FD-ETDRK4 RMSE |", "|---|---|---|---|"]
    lines += [f"| {system} | {s} | {r_model[s - 1]:.4g} | {r_base[s - 1]:.4g} |" for s in marks]
    atomic_savez(out / f"fig6_rmse_{system}.npz", model=r_model, baseline=r_base)
    record(
        "vae_rollout", "\n".join(lines),
        f"scale={scale}; {len(X)} test trajectories; training horizon {model.rollout_steps_} steps; "
        f"baseline: {sub} ETDRK4 step(s) per frame",
    )


def cmd_wall(args, scale, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from _record import record

    cfg = SCALES["ks"][scale]["sim"]
    n_points = cfg.get("n_points", 256)
    length = cfg.get("length", 64 * math.pi)
    n_frames = cfg.get("n_frames", 256)
    dt = cfg.get("t_max", 32 * math.pi) / n_frames
    model = get_model(args, "ks", scale)
    gammas = np.array([0.8, 1.0, 1.2])
    X = ks_with_walls(len(gammas), gammas, n_points, length, n_frames, dt, args.seed + 7)
    n_steps = X.shape[1] - 1
    wall = model.predict(X[:, 0], n_steps, context=X, boundary="constant", fill_value=0.0)
    periodic = model.predict(X[:, 0], n_steps, context=X, boundary="periodic")
    r_wall = rollout_rmse(X[:, 1:], wall)
    r_per = rollout_rmse(X[:, 1:], periodic)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
    ext = [0, X.shape[2], n_steps * dt, 0]
    for ax, img, title in zip(axes, [X[1, 1:, :, 0], wall[1, :, :, 0], wall[1, :, :, 0] - X[1, 1:, :, 0]],
                              ["test example (walls)", "model, constant padding", "error"]):
        im = ax.imshow(img, aspect="auto", extent=ext, cmap="RdBu_r", vmin=-3, vmax=3)
        ax.axhline(model.rollout_steps_ * dt, color="k", ls=":", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (grid index)")
    axes[0].set_ylabel("t")
    fig.subplots_adjust(bottom=0.2)
    fig.colorbar(im, ax=axes, shrink=0.8)
    atomic_savefig(fig, out / "fig11_walls.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    RolloutErrorDisplay.from_predictions(
        X[:, 1:], {"constant (wall) padding": wall, "periodic padding (wrong BC)": periodic},
        horizon=model.rollout_steps_, ax=ax,
    )
    ax.set_title("KS with walls: rollout RMSE")
    fig.tight_layout()
    atomic_savefig(fig, out / "fig11_walls_rmse.png", dpi=120)
    plt.close(fig)
    marks = sorted({1, model.rollout_steps_, n_steps // 4, n_steps // 2} & set(range(1, n_steps + 1)))
    lines = ["| step | RMSE, constant (wall) padding | RMSE, periodic padding (wrong BC) |", "|---|---|---|"]
    lines += [f"| {s} | {r_wall[s - 1]:.4g} | {r_per[s - 1]:.4g} |" for s in marks]
    record("vae_rollout_walls", "\n".join(lines), f"scale={scale}; KS with walls, gamma {gammas.tolist()}, model trained on periodic data")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["rmse", "wall"])
    ap.add_argument("--system", choices=["ks", "nls", "cd"], default="ks")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default=None, help="pickled DynamicsVAE from vae_parameters.py")
    add_run_arguments(ap)
    add_model_arguments(ap)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    scale = "quick" if args.quick else "paper"
    out = Path(args.out or (Path(os.environ["SKPHYS_BENCH_DIR"]) / "vae_rollout" if "SKPHYS_BENCH_DIR" in os.environ else HERE / "output"))
    out.mkdir(parents=True, exist_ok=True)
    (cmd_rmse if args.command == "rmse" else cmd_wall)(args, scale, out)


if __name__ == "__main__":
    main()
