"""One task-1 training step, checked for what each config switch is meant to change (shared by the CPU and
CUDA tests): every trained module moves, the critic runs in bf16 exactly when autocast is on, `d_box` gives
the critic a 4th (box) channel, `d_head="flatten"` reads the whole final map, `channels_last` stores the
conv weights NHWC exactly where it pays (CUDA, or a CPU with bf16), and the logged terms match the switches."""
import torch

from indprior.models import Discriminator


def _convs(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def step_and_check_variant(method, cfg, batch) -> dict[str, torch.Tensor]:
    D: Discriminator = method.D
    critic_dtypes = []
    hook = D.register_forward_hook(lambda mod, inp, out: critic_dtypes.append(out.dtype))
    trained = {"provider": method.provider, "layout": method.layout, "critic": D, "EMA provider": method.ema.module}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in trained.items()}
    stats = method.train_step(batch, 0)
    hook.remove()
    assert all(torch.isfinite(v) for v in stats.values()), stats
    for name, module in trained.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), f"{name} did not move"
    assert set(critic_dtypes) == {torch.bfloat16 if method.amp else torch.float32}, critic_dtypes
    assert _convs(D)[0].in_channels == (4 if cfg.d_box else 3)
    if cfg.d_box:  # the 4th channel is the box in [-1, 1]; composites carry the box moved with the instance
        x = method.critic_input(batch["real"], batch["real_box"])
        assert torch.equal(x[:, 3:], batch["real_box"] * 2 - 1)
        assert "fake_box" in method.generate(batch)
    ch = _convs(D)[-1].out_channels
    side = (D.fc.in_features // ch) ** 0.5
    assert side == (1 if cfg.d_head == "sum" else 4), "flatten: a linear layer over the critic's final 4x4 map"
    nhwc = cfg.channels_last and (method.device.type == "cuda" or method.amp)
    assert _convs(method.provider)[0].weight.is_contiguous(memory_format=torch.channels_last) == nhwc
    assert ("loss/edge" in stats) == (cfg.lambda_edge > 0) and ("loss/proj" in stats) == (cfg.lambda_proj > 0)
    return stats
