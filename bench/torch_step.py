#!/usr/bin/env python3
"""One training step of a small MLP, torch.nn's modules against gpu_act.torch's.

    python bench/torch_step.py [--batch 256] [--width 1024] [--depth 3]
                               [--classes 1000] [--reps 30] [--device cpu]

The model is Linear, GELU, Linear, SiLU, ... (``depth`` hidden layers), a
final Linear and CrossEntropyLoss(label_smoothing=0.1); the gpu_act copy is
the same model (the same weights) after ``gpu_act.torch.nn.swap_modules``. A
step is forward, loss, backward and zeroing the gradients. The two models run
in turns, ``reps`` steps each after two warm-up steps, and the median step
time of each is printed, with the time of the activations and the loss alone
(the same step with them replaced by the identity and a sum) subtracted out
as "non-linear part": that is what the swap changes.
"""

import argparse
import copy
import statistics
import time

import torch

from gpu_act.torch import nn as gnn


def mlp(width, depth, classes, identity=False):
    layers = [torch.nn.Linear(width, width)]
    for i in range(depth - 1):
        layers += [torch.nn.Identity() if identity else (torch.nn.GELU() if i % 2 == 0 else torch.nn.SiLU()),
                   torch.nn.Linear(width, width)]
    layers += [torch.nn.Identity() if identity else torch.nn.GELU(), torch.nn.Linear(width, classes)]
    return torch.nn.Sequential(*layers)


def step(model, loss_fn, x, t, sync):
    t0 = time.perf_counter()
    loss_fn(model(x), t).backward()
    model.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    torch.manual_seed(0)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(a.batch, a.width, device=dev)
    t = torch.randint(0, a.classes, (a.batch,), device=dev)
    base = mlp(a.width, a.depth, a.classes).to(dev)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    runs = {
        "torch.nn": (base, loss),
        "gpu_act.torch.nn": (gnn.swap_modules(copy.deepcopy(base)), gnn.swap_modules(copy.deepcopy(loss))),
        "linear layers only": (mlp(a.width, a.depth, a.classes, identity=True).to(dev), lambda z, t: z.sum()),
    }

    times = {name: [] for name in runs}
    for _ in range(2):
        for name, (model, loss_fn) in runs.items():
            step(model, loss_fn, x, t, sync)
    for _ in range(a.reps):
        for name, (model, loss_fn) in runs.items():
            times[name].append(step(model, loss_fn, x, t, sync))
    med = {name: statistics.median(v) for name, v in times.items()}
    floor = med.pop("linear layers only")

    print(f"MLP step (forward + backward): batch {a.batch}, width {a.width}, {a.depth} hidden layers, "
          f"{a.classes} classes, {a.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {a.reps}")
    print(f"{'':18} {'step ms':>9} {'non-linear part ms':>19}")
    for name, m in med.items():
        print(f"{name:18} {m * 1e3:9.2f} {(m - floor) * 1e3:19.2f}")
    print(f"{'linear layers only':18} {floor * 1e3:9.2f}")
    ours, theirs = med["gpu_act.torch.nn"], med["torch.nn"]
    print(f"gpu_act.torch.nn / torch.nn: step {ours / theirs:.2f}x, non-linear part "
          f"{(ours - floor) / (theirs - floor):.2f}x")


if __name__ == "__main__":
    main()
