"""The operations self-attention is made of, for any number of spatial axes: scaled dot-product attention (PyTorch's
fused kernel, or explicit weights when maps are wanted), window partitions of a grid, and distances between
positions in mm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

QUERY_CHUNK = 1024  # queries per block of explicit weights: bounds their memory to chunk x keys per head
FUSED_FROM_KEYS = 256  # fewer keys per query, in bf16 with gradients, on the CPU: plain products (see `attend`)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    scale: float | None = None,
    top_k: int | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v, without keeping the weights. q (B, h, Nq, d), k and v (B, h, Nk, d); `key_mask`
    (B, Nk) bool, True where a key takes part; `top_k`: each query keeps only its k highest scores (hard attention,
    computed by plain products: the fused kernel cannot select keys).

    PyTorch's fused kernel, which never forms the Nq x Nk weights; except for CPU training in bfloat16 on fewer than
    `FUSED_FROM_KEYS` keys (small windows, a coarse bottleneck), where the fused kernel's backward costs about 5x as
    much as plain matrix products (64 keys of 8 channels per head: 20 ms against 3.4 ms; at 512 keys, and in
    float32 at every size, the fused kernel is as fast or faster, also with AVX2 only). Both compute the same
    function."""
    if _plain_is_faster(q, k) or (top_k is not None and top_k < k.shape[-2]):
        return plain_attention(q, k, v, key_mask, scale, top_k)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _plain_is_faster(q: torch.Tensor, k: torch.Tensor) -> bool:
    return (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and torch.is_grad_enabled()
        and k.shape[-2] < FUSED_FROM_KEYS
    )


def plain_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    scale: float | None = None,
    top_k: int | None = None,
) -> torch.Tensor:
    """`attend` by matrix products, the softmax in float32."""
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return keep_top_k(scores, top_k).float().softmax(dim=-1).to(v.dtype) @ v


def keep_top_k(scores: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Scores (..., Nk) with all but each row's `top_k` largest set to -inf (ties at the k-th score stay)."""
    if top_k is None or top_k >= scores.shape[-1]:
        return scores
    kth = scores.topk(top_k, dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, float("-inf"))


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    scale: float | None = None,
    top_k: int | None = None,
) -> torch.Tensor:
    """The weights `attend` applies, explicitly: (B, h, Nq, Nk), each row summing to 1 over the keys that take
    part (with `top_k`, over each row's k highest-scoring keys), computed in float32."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return keep_top_k(scores, top_k).softmax(dim=-1)


def grid_positions(
    shape: Sequence[int], spacing: Sequence[float], offset: float | Sequence[float] = 0.0
) -> torch.Tensor:
    """(N, dims) positions in mm of a grid of `shape` (row-major, like `flatten`), `offset` positions from index 0
    per axis (a pooled grid's cells sit at their centres)."""
    offsets = offset if isinstance(offset, Sequence) else [offset] * len(shape)
    axes = [(torch.arange(n, dtype=torch.float32) + o) * s for n, s, o in zip(shape, spacing, offsets, strict=True)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


def mean_distance(weights: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """Attention distance per query: sum_k A[q, k] * ||p_q - p_k||; weights (..., Nq, Nk) -> (..., Nq)."""
    return (weights * torch.cdist(q_pos, k_pos).to(weights.device)).sum(dim=-1)


@dataclass(frozen=True)
class Windows:
    """A partition of a (B, C, *grid) tensor into windows of `size` positions per axis, the grid first padded by
    `offset` at the start (a shifted partition) and at the end to whole windows; padded positions never act as
    keys. One window covering a grid is global attention."""

    grid: tuple[int, ...]
    size: tuple[int, ...]
    offset: tuple[int, ...]

    @classmethod
    def over(cls, grid: Sequence[int], window: int | None, shift: bool) -> Windows:
        """Windows of `window` per axis (the grid itself where smaller; None: one window, global attention);
        `shift` offsets the partition by half a window, so neighbouring windows of the unshifted one meet."""
        size = tuple(n if window is None else min(window, n) for n in grid)
        offset = tuple(s // 2 if shift and s < n else 0 for s, n in zip(size, grid, strict=True))
        return cls(tuple(grid), size, offset)

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(math.ceil((n + o) / s) * s for n, o, s in zip(self.grid, self.offset, self.size, strict=True))

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(p // s for p, s in zip(self.padded, self.size, strict=True))

    @property
    def is_global(self) -> bool:
        return self.size == self.grid

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        pad: list[int] = []
        for n, o, p in zip(reversed(self.grid), reversed(self.offset), reversed(self.padded), strict=True):
            pad += [o, p - n - o]
        return F.pad(x, pad) if any(pad) else x

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *grid) -> tokens (B * windows, positions per window, C)."""
        b, c, d = x.shape[0], x.shape[1], len(self.grid)
        x = self._pad(x)
        shape = [b, c]
        for n, s in zip(self.counts, self.size, strict=True):
            shape += [n, s]
        x = x.reshape(shape)
        order = [0, *(2 + 2 * i for i in range(d)), *(3 + 2 * i for i in range(d)), 1]  # B, counts, sizes, C
        return x.permute(order).reshape(b * math.prod(self.counts), math.prod(self.size), c)

    def merge(self, tokens: torch.Tensor, batch: int) -> torch.Tensor:
        """The inverse of `split`: tokens (B * windows, positions, C) -> (B, C, *grid)."""
        d, c = len(self.grid), tokens.shape[-1]
        x = tokens.reshape(batch, *self.counts, *self.size, c)
        order = [0, 1 + 2 * d]
        for i in range(d):
            order += [1 + i, 1 + d + i]
        x = x.permute(order).reshape(batch, c, *self.padded)
        crop = (slice(None), slice(None), *(slice(o, o + n) for o, n in zip(self.offset, self.grid, strict=True)))
        return x[crop]

    def key_mask(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """(B * windows, positions) True at real positions; None when nothing is padded."""
        if self.padded == self.grid:
            return None
        ones = torch.ones(batch, 1, *self.grid, device=device)
        return self.split(ones)[..., 0] > 0.5

    def local_positions(self, spacing: Sequence[float]) -> torch.Tensor:
        """(positions per window, dims) in mm inside a window: the same for every window."""
        return grid_positions(self.size, spacing)
