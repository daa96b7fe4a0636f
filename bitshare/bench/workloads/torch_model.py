"""A torchvision model inference workload: random weights (nothing is downloaded), fp16, on the
GPU, one random input batch made on the GPU once.

    python -m bitshare.bench.workloads.torch_model --model resnet50 --batch 32
"""

from __future__ import annotations

import argparse

WARMUP_S = 3.0
IMAGE_SIZE = 224


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    import torch
    import torchvision

    from bitshare.bench.protocol import serve

    torch.backends.cudnn.benchmark = True
    model = torchvision.models.get_model(args.model, weights=None).half().cuda().eval()
    x = torch.randn(args.batch, 3, IMAGE_SIZE, IMAGE_SIZE, device="cuda", dtype=torch.float16)

    def step() -> int:
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return args.batch

    serve(step, warmup_s=WARMUP_S)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
