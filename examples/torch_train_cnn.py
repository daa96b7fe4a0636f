"""A small CNN trained with BatchNorm, Adam, a learning-rate schedule and gradient clipping; its
loss at every step is checked against the same training on the CPU.

Runs unchanged with PyTorch on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/torch_train_cnn.py
"""

import copy

import torch
from torch import nn

STEPS, BATCH = 12, 16
device = "cuda" if torch.cuda.is_available() else "cpu"


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(p=0.0),
        nn.Linear(16, 10),
    )


def train(net: nn.Module, on: str, data: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    net = net.to(on)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    losses = []
    for images, labels in data:
        loss = nn.functional.cross_entropy(net(images.to(on)), labels.to(on))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


generator = torch.Generator().manual_seed(1)
data = [
    (torch.randn(BATCH, 1, 28, 28, generator=generator), torch.randint(0, 10, (BATCH,), generator=generator))
    for _ in range(STEPS)
]
reference = model()
got = train(copy.deepcopy(reference), device, data)
expected = train(reference, "cpu", data)
for step, (a, b) in enumerate(zip(got, expected, strict=True)):
    print(f"step {step:2d}: loss {a:.6f} on {device}, {b:.6f} on the CPU")
    assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), f"step {step}: {a} != {b}"
print("training matches the CPU step by step")
