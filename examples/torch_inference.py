"""torchvision inference (resnet18, mobilenet_v2, random weights) on the GPU, checked against the CPU.

Runs unchanged with PyTorch on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/torch_inference.py
"""

import copy

import torch
import torchvision

device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
images = torch.randn(4, 3, 96, 96)

for name in ("resnet18", "mobilenet_v2"):
    model = getattr(torchvision.models, name)(weights=None).eval()
    on_device = copy.deepcopy(model).to(device)
    with torch.inference_mode():
        expected = model(images)
        logits = on_device(images.to(device))
        top5 = logits.topk(5, dim=1).indices.cpu()
        got = logits.cpu()
    worst = (got - expected).abs().max().item()
    same_top5 = torch.equal(top5, expected.topk(5, dim=1).indices)
    print(f"{name} on {device}: logits {tuple(got.shape)}, max |difference| {worst:.2e}, top-5 same: {same_top5}")
    assert logits.device.type == device and torch.allclose(got, expected, rtol=1e-3, atol=1e-4), name
print("inference matches the CPU within tolerance")
