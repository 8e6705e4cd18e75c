"""``simulate``: the codec's effect on a batch, in torch, for training and evaluation."""

from __future__ import annotations

import torch

from codec.config import CodecConfig
from codec.sparse import analyze_batch, coded_mask_batch, reconstruct_batch


class _CodecRoundTrip(torch.autograd.Function):
    """Forward: the decoded maps. Backward: the gradient on coded elements, zero elsewhere.

    Quantization passes gradients straight through, and the selection mask of
    the forward pass stays fixed in the backward pass.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, decoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        return decoded

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return grad_output * mask.to(grad_output.dtype), None, None


def simulate(features: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Return, for an N x C x H x W batch, what ``decode(encode(features[i]))`` returns.

    The result is float32 on the input's device and equal bit for bit to
    the real decoder's output, because both use the same selection,
    quantization and reconstruction code. It is differentiable with respect
    to ``features``.
    """
    if features.dim() != 4:
        raise ValueError(f"simulate expects an N x C x H x W batch, got shape {tuple(features.shape)}")

    maps = analyze_batch(features.detach().to("cpu", torch.float32).numpy(), config)
    decoded = torch.from_numpy(reconstruct_batch(maps)).to(features.device)
    mask = torch.from_numpy(coded_mask_batch(maps)).to(features.device)
    return _CodecRoundTrip.apply(features, decoded, mask)
