"""Data-parallel training on CPU with the gloo backend: 2 processes, as torchrun runs them."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from indprior.core import dist
from indprior.core.trainer import CHECKPOINT, load_checkpoint, read_log
from indprior.data import make_synthetic_cub


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    assert dist.init_from_env() and dist.world_size() == world and dist.rank() == rank
    torch.manual_seed(100 + rank)  # different init on purpose: broadcast must make them equal
    net = torch.nn.Linear(3, 1)
    dist.broadcast_modules([net])
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    dist.sync_optimizers([opt])
    x = torch.arange(12.0).view(4, 3)[dist.shard(4)]  # rank 0: rows 0, 2; rank 1: rows 1, 3
    loss = net(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    stats = dist.average_scalars(torch.tensor([float(rank)]))
    torch.save({"state": net.state_dict(), "stats": stats}, f"{out}/rank{rank}.pt")
    dist.leave()  # a barrier first: tearing gloo down while the other rank still holds it can SIGABRT (CI, session 13)


def test_gradients_are_averaged_like_one_big_batch(tmp_path):
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), f"{key} differs across ranks"
    assert float(r0["stats"]) == float(r1["stats"]) == 0.5, "statistics are averaged over ranks"
    torch.manual_seed(100)  # rank 0's init, trained in one process on all four rows
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.arange(12.0).view(4, 3)).pow(2).mean().backward()
    opt.step()
    for key, value in net.state_dict().items():
        assert torch.allclose(value, r0["state"][key], atol=1e-5), key


def test_not_distributed_is_a_no_op():
    assert not dist.is_distributed() and dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    assert dist.shard(5) == slice(0, 5, 1) and dist.sync_optimizers([]) == []
    t = torch.tensor([1.0, 2.0])
    assert dist.average_scalars(t) is t


@pytest.mark.slow
def test_torchrun_two_gloo_processes_train_task1(tmp_path):
    root = make_synthetic_cub(tmp_path / "CUB", n_images=12, n_test=4, image_size=80, seed=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "indprior.train",
           "--task", "task1", "--profile", "smoke", "--dataset", f"cub:{root}", "--out", str(out), "--set", "steps=12",
           "--set", "refine=\"none\"", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 4 and 0 <= metrics["iou_mean"] <= 1
    assert load_checkpoint(out / CHECKPOINT)["step"] == 12
    steps = [r["step"] for r in read_log(out) if "loss/D" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 12, "rank 0 alone writes the log"
    assert '"iou_mean"' in res.stdout, "rank 0 prints the metrics"
