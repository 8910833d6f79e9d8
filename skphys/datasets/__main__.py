"""Command line: simulate a built-in system and write it as a The Well dataset.

Example::

    python -m skphys.datasets kuramoto_sivashinsky --n-samples 500 --root data --split train \\
        --seed 0 --n-frames 128 --n-points 128

writes ``data/datasets/kuramoto_sivashinsky/data/train/*.hdf5`` and ``stats.yaml``, readable by
``skphys.datasets.load_well`` and ``the_well.data.WellDataset``. Options the command line does not
know (``--n-frames 128``) are passed to the simulator as keyword arguments (``n_frames=128``);
values are read as Python literals (``64``, ``0.5``, ``64,64``, ``None``, ``True``) and otherwise
kept as strings.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys

_OWN = ("n_samples", "random_state", "noise", "device", "verbose", "return_X_y")


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _simulator_kwargs(extra, parser):
    """``["--n-frames", "64", "--dealias", "True"]`` -> ``{"n_frames": 64, "dealias": True}``."""
    kwargs = {}
    i = 0
    while i < len(extra):
        key = extra[i]
        if not key.startswith("--") or len(key) < 3:
            parser.error(f"unexpected argument {key!r}; simulator options are given as --key value")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                parser.error(f"simulator option {key} needs a value")
            value = extra[i + 1]
            i += 2
        name = key[2:].replace("-", "_")
        if name in kwargs:
            parser.error(f"simulator option {key} given twice")
        kwargs[name] = _literal(value)
    return kwargs


def _systems_help():
    from skphys.datasets._registry import SIMULATORS

    lines = ["systems and their simulator options (pass as --key value):"]
    for name, fn in sorted(SIMULATORS.items()):
        params = [p.replace("_", "-") for p in inspect.signature(fn).parameters if p not in _OWN]
        lines.append(f"  {name}: " + ", ".join(f"--{p}" for p in params))
    return "\n".join(lines)


def build_parser():
    from skphys.datasets._registry import SIMULATORS

    parser = argparse.ArgumentParser(
        prog="python -m skphys.datasets",
        description="Simulate a built-in PDE system with skphys.datasets.make_system and write it "
        "as a The Well dataset (<root>/datasets/<name>/data/<split>/*.hdf5 and stats.yaml).",
        epilog=_systems_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("system", metavar="SYSTEM", help=f"one of: {', '.join(sorted(SIMULATORS))}")
    parser.add_argument("--n-samples", type=int, required=True, help="number of trajectories")
    parser.add_argument("--root", required=True, help="base directory (the dataset goes to ROOT/datasets/NAME)")
    parser.add_argument("--split", default="train", help="split name (default: train)")
    parser.add_argument("--name", default=None, help="dataset name (default: SYSTEM)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise added to the data")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda' (default: auto)")
    parser.add_argument("--n-trajectories-per-file", type=int, default=None, help="split into several files")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files of the split")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from skphys.datasets import make_system, write_well
    from skphys.datasets._registry import SIMULATORS

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.system not in SIMULATORS:
        parser.error(f"unknown system {args.system!r}; known systems: {', '.join(sorted(SIMULATORS))}")
    if args.n_samples < 1:
        parser.error(f"--n-samples must be >= 1, got {args.n_samples}")
    kwargs = _simulator_kwargs(extra, parser)
    clash = sorted(set(kwargs) & set(_OWN))
    if clash:
        parser.error(f"set {', '.join(clash)} with the command line's own options, not as simulator options")
    known = inspect.signature(SIMULATORS[args.system]).parameters
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        valid = ", ".join("--" + p.replace("_", "-") for p in known if p not in _OWN)
        parser.error(f"{args.system} has no option(s) {', '.join('--' + u.replace('_', '-') for u in unknown)}; valid: {valid}")

    name = args.name or args.system
    try:
        bunch = make_system(
            args.system,
            args.n_samples,
            noise=args.noise,
            random_state=args.seed,
            device=args.device,
            verbose=not args.quiet,
            **kwargs,
        )
        path = write_well(
            bunch,
            args.root,
            name,
            split=args.split,
            n_trajectories_per_file=args.n_trajectories_per_file,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except FileExistsError as exc:
        parser.error(str(exc))
    except (ValueError, TypeError) as exc:
        parser.error(f"{args.system}: {exc}")
    print(
        f"wrote {args.n_samples} {args.system} trajectories of shape {bunch.data.shape[1:]} "
        f"(fields {bunch.field_names}, parameters {bunch.target_names}) to {path} split {args.split!r}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
