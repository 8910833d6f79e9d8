"""The number of processes changes the speed, not the result: 2 gloo ranks vs 1 process."""

import os
import socket
import subprocess
import sys

import pytest
import torch

WORKER = os.path.join(os.path.dirname(__file__), "_distributed_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(case, world, tmp_path):
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    outs = [tmp_path / f"{case}-{world}-{r}.pt" for r in range(world)]
    procs = [
        subprocess.Popen([sys.executable, WORKER, str(r), str(world), port, case, str(outs[r])], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for r in range(world)
    ]
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"{case}: rank timed out")
        assert p.returncode == 0, out.decode()[-3000:]
    return [torch.load(o) for o in outs]


@pytest.mark.parametrize("case", ["jepa", "videomae", "vae", "probe", "mpp", "disco", "finetune"])
def test_two_ranks_equal_one_process(case, tmp_path):
    (single,) = _run(case, 1, tmp_path)
    r0, r1 = _run(case, 2, tmp_path)
    for key in single:
        # every rank returns the same model, bit for bit
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=f"{case}: ranks differ in {key}")
        a, b = r0[key], single[key]
        if key.endswith("qkv.bias"):
            # the key bias cancels in the softmax: its gradient is pure rounding noise, which
            # Adam scales up to steps of size lr. Check the query and value biases strictly.
            q, k, v = a.chunk(3)
            q1, k1, v1 = b.chunk(3)
            torch.testing.assert_close(k, k1, rtol=0, atol=10 * 1e-3)
            a, b = torch.cat([q, v]), torch.cat([q1, v1])
        # and it is the one-process model, to float tolerance
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{case}: 2 ranks vs 1 in {key}")


def test_under_torchrun_both_ranks_return_the_same_model(tmp_path):
    """The real launcher, ``torchrun --standalone --nproc-per-node 2`` on the CPU (gloo); the other
    estimators run under the same environment in the tests above."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for case in ("probe",):
        out = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", WORKER,
             "torchrun", "-", "-", case, str(tmp_path / f"{case}-RANK.pt")],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        r0, r1 = (torch.load(tmp_path / f"{case}-{r}.pt") for r in (0, 1))
        for key in r0:
            torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=f"{case}: ranks differ in {key}")
