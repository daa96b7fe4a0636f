"""A torchvision model inference workload: random weights (nothing is downloaded), fp16 (or fp32),
on the GPU (a remote one under remote PyTorch), one random input batch made on the GPU once.

    python -m bitshare.bench.workloads.torch_model --model resnet50 --batch 32
    python -m bitshare.bench.workloads.torch_model --model resnet50 --batch 1 --image-size 96 --fp32
"""

from __future__ import annotations

import argparse

WARMUP_S = 3.0
IMAGE_SIZE = 224


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--fp32", action="store_true", help="float32 instead of float16 (a CPU computes it)")
    args = parser.parse_args()

    import torch
    import torchvision

    from bitshare.bench.protocol import serve

    torch.backends.cudnn.benchmark = True
    dtype = torch.float32 if args.fp32 else torch.float16
    model = torchvision.models.get_model(args.model, weights=None).to(dtype).cuda().eval()
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device="cuda", dtype=dtype)

    def step() -> int:
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return args.batch

    serve(step, warmup_s=WARMUP_S)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
