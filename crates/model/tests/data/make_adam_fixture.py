"""torch.optim.Adam on a fixed problem, step by step, for tests/adam.rs.

Generated with the project's own PyTorch (torch 2.11.0, CPU, float32):

    .libtorch/venv/bin/python crates/model/tests/data/make_adam_fixture.py

Problem: parameters W [3, 4] and b [3] start at fixed values; each step's loss
is sum((x @ W.T + b - y)^2) + sum(W^3) for fixed x [5, 4] and y [5, 3] (the
cube makes gradients change sign and scale). Writes adam.json: the start
values, x, y, the hyper-parameters and W and b after each of 25 steps.
"""
import json
import os

import torch

torch.manual_seed(0)
w = torch.tensor([[0.5 - 0.1 * (i * 4 + j) for j in range(4)] for i in range(3)], requires_grad=True)
b = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
x = torch.tensor([[((i * 7 + j * 3) % 11) / 11.0 - 0.5 for j in range(4)] for i in range(5)])
y = torch.tensor([[((i * 5 + j * 2) % 7) / 7.0 for j in range(3)] for i in range(5)])
config = {"lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8}
start = {"w": w.detach().tolist(), "b": b.detach().tolist()}
optimizer = torch.optim.Adam([w, b], lr=config["lr"], betas=tuple(config["betas"]), eps=config["eps"])
steps = []
for _ in range(25):
    optimizer.zero_grad()
    loss = ((x @ w.T + b - y) ** 2).sum() + (w ** 3).sum()
    loss.backward()
    optimizer.step()
    steps.append({"w": w.detach().tolist(), "b": b.detach().tolist(), "loss": loss.item()})
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adam.json")
with open(out, "w") as file:
    json.dump({"torch": torch.__version__, "config": config, "start": start, "x": x.tolist(), "y": y.tolist(),
               "steps": steps}, file, indent=1)
print("wrote", out)
