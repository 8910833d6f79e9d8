"""A fit with a checkpoint directory, for the kill-and-resume tests.

``python _engine_worker.py CASE CHECKPOINT_DIR OUT [max_epochs]``: fits the estimator of
``CASE`` (see ``_distributed_worker.CASES``) with ``checkpoint_dir`` and saves its parameters.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402

import _distributed_worker as w  # noqa: E402

if __name__ == "__main__":
    case, ckpt, out = sys.argv[1:4]
    est, X, y = w.make(case)
    est.set_params(checkpoint_dir=None if ckpt == "-" else ckpt, max_epochs=int(sys.argv[4]), verbose=2)
    est.fit(X, y)
    print("FIT DONE", len(est.history_), flush=True)
    torch.save(w.fitted_state(est), out)
