"""Self-attention on the feature grid of a U-Net level, one code path for 2D and 3D.

- `SelfAttentionBlock`: a pre-norm transformer block over the level's positions: a convolutional position encoding
  (a depth-wise 3^d convolution added to the features, Chu et al. 2021: position information for any patch size),
  multi-head self-attention over the whole grid ("global") or inside windows ("window", Swin's partition; every
  second block of a stack shifts it by half a window), and an MLP. Its projections start at zero, so a new block
  passes its input through and training decides how much attention to add.
- `NonLocalBlock`: Wang et al. 2018's non-local block (embedded Gaussian): one head, keys and values max-pooled by
  2 per axis, y = x + W_z softmax(theta(x) phi(x)^T / sqrt(d)) g(x), W_z's norm starting at zero.
- `SelfAttentionStage`: the blocks placed after one encoder stage; with query points asked for and blocks
  stacked, the attention rollout of the stage (Abnar & Zuidema 2020).

Without a `MapRecorder` attention runs on `F.scaled_dot_product_attention` (`attention_ops.attend`); with one, the
weights are computed explicitly (in blocks of queries), applied the same way, and summarised as maps
(`seg.models.maps`): per head, how far each query looks (mm), and for query points the weights over keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg.models import layers
from seg.models.attention_ops import QUERY_CHUNK, Windows, attend, attention_weights, grid_positions, mean_distance
from seg.models.maps import SELF, MapId, MapSource

SELF_ATTENTION_KINDS = ("global", "window", "nonlocal")


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, q_pos, k_pos, top_k=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output `attend` gives, from explicit weights, and each query's attention distance (mm) per head:
    (B, h, Nq, d) and (B, h, Nq). Queries go in blocks of `QUERY_CHUNK`, so weights never exceed chunk x keys."""
    outs, dists = [], []
    for start in range(0, q.shape[2], QUERY_CHUNK):
        a = attention_weights(q[:, :, start : start + QUERY_CHUNK], k, mask, top_k=top_k)
        outs.append((a @ v.float()).to(v.dtype))
        dists.append(mean_distance(a, q_pos[start : start + a.shape[2]], k_pos))
    return torch.cat(outs, dim=2), torch.cat(dists, dim=2)


def grid_index(point: Sequence[int], factor: Sequence[int], grid: Sequence[int]) -> tuple[int, ...]:
    """The position of a grid down-sampled by `factor` that holds input voxel `point` (clamped to the grid)."""
    return tuple(min(max(int(p) // f, 0), n - 1) for p, f, n in zip(point, factor, grid, strict=True))


class SelfAttentionBlock(MapSource):
    """`heads` heads of `head_dim` channels (default channels // heads; fewer heads than that after pruning).
    `top_k`: each query attends to its k highest-scoring keys only. `head_mask` (heads,) scales each head's
    output (importance and pruning, `seg.models.heads`)."""

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        heads: int,
        window: int | None,
        shift: bool,
        mlp_ratio: int = 2,
        head_dim: int | None = None,
        top_k: int | None = None,
    ):
        super().__init__()
        if head_dim is None and channels % heads:
            raise ValueError(f"SelfAttentionBlock: {channels} channels do not split into {heads} heads")
        self.head_dim = head_dim or channels // heads
        self.heads, self.window, self.shift, self.top_k = heads, window, shift, top_k
        self.keep_weights = False  # set by a stage of several blocks: its rollout needs them
        self.weights: tuple[Windows, torch.Tensor] | None = None
        self.head_mask: torch.Tensor | None = None
        inner = heads * self.head_dim
        self.pos = layers.conv(spatial_dims)(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * inner)
        self.proj = nn.Linear(inner, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, mlp_ratio * channels), nn.GELU(), nn.Linear(mlp_ratio * channels, channels)
        )
        for last in (self.proj, self.mlp[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def produces(self) -> list[MapId]:
        return [MapId(SELF, self.site, h) for h in range(self.heads)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        x = x + self.pos(x)
        windows = Windows.over(x.shape[2:], self.window, self.shift)
        tokens = windows.split(x)  # (B * windows, P, C)
        mask = windows.key_mask(batch, x.device)
        q, k, v = self.qkv(self.norm1(tokens)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        if self.recorder is None:
            out = attend(q, k, v, mask, top_k=self.top_k)
        else:
            out = self._recorded(q, k, v, mask, windows, batch)
        if self.head_mask is not None:
            out = out * self.head_mask.to(out.dtype)[:, None, None]  # (B * windows, h, P, d)
        tokens = tokens + self.proj(out.transpose(1, 2).flatten(2))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return windows.merge(tokens, batch)

    def _recorded(self, q, k, v, mask, windows: Windows, batch: int) -> torch.Tensor:
        """Attention with explicit weights, reporting each head's distance map and the query points' rows."""
        request = self.recorder.request
        pos = windows.local_positions(request.spacing_of(self.factor))
        out, dist = explicit_attention(q, k, v, mask, pos, pos, self.top_k)
        dist_grid = windows.merge(dist.transpose(1, 2), batch)  # (B, h, *grid)
        for h in range(self.heads):
            self.report(SELF, dist_grid[:, h : h + 1], head=h)
        for j, point in enumerate(request.queries):
            rows = self._query_rows(q, k, mask, windows, batch, point)  # (B, h, *grid)
            for h in range(self.heads):
                self.recorder.put(MapId(SELF, self.site, h, j), rows[:, h : h + 1], self.factor)
        if self.keep_weights and request.queries:
            self.weights = (windows, attention_weights(q, k, mask, top_k=self.top_k).mean(dim=1))  # (B * wins, P, P)
        return out

    def _query_rows(self, q, k, mask, windows: Windows, batch: int, point) -> torch.Tensor:
        """Each head's weights over the keys of the window that holds `point`, on the grid: (B, h, *grid)."""
        at = [g + o for g, o in zip(grid_index(point, self.factor, windows.grid), windows.offset, strict=True)]
        w = int(torch.tensor([a // s for a, s in zip(at, windows.size, strict=True)]).dot(_strides(windows.counts)))
        p = int(torch.tensor([a % s for a, s in zip(at, windows.size, strict=True)]).dot(_strides(windows.size)))
        n_windows = q.shape[0] // batch
        rows_at = [b * n_windows + w for b in range(batch)]
        a = attention_weights(
            q[rows_at, :, p : p + 1], k[rows_at], None if mask is None else mask[rows_at], top_k=self.top_k
        )
        tokens = q.new_zeros(q.shape[0], q.shape[2], self.heads, dtype=torch.float32)  # (B * windows, P, h)
        tokens[rows_at] = a[:, :, 0].transpose(1, 2)
        return windows.merge(tokens, batch)


def _strides(counts: Sequence[int]) -> torch.Tensor:
    """Row-major strides of a grid of `counts`: the flat index of a multi-index is its dot product with them."""
    out, step = [], 1
    for n in reversed(counts):
        out.append(step)
        step *= n
    return torch.tensor(out[::-1])


class NonLocalBlock(MapSource):
    def __init__(self, spatial_dims: int, channels: int, norm: str = "instance"):
        super().__init__()
        inter = max(channels // 2, 1)
        conv = layers.conv(spatial_dims)
        self.theta, self.phi, self.g = (conv(channels, inter, 1) for _ in range(3))
        self.out = nn.Sequential(conv(inter, channels, 1), layers.norm(spatial_dims, norm, channels))
        zero = self.out[1] if norm != "none" else self.out[0]
        nn.init.zeros_(zero.weight)
        self.spatial_dims = spatial_dims

    def produces(self) -> list[MapId]:
        return [MapId(SELF, self.site, 0)]

    def _pool(self, t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        kernel = tuple(min(2, n) for n in t.shape[2:])
        pool = F.max_pool2d if self.spatial_dims == 2 else F.max_pool3d
        return pool(t, kernel, ceil_mode=True), kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.shape[2:]
        q = self.theta(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, N, inter)
        phi, kernel = self._pool(self.phi(x))
        k = phi.flatten(2).transpose(1, 2)[:, None]  # (B, 1, Nk, inter)
        v = self._pool(self.g(x))[0].flatten(2).transpose(1, 2)[:, None]
        if self.recorder is None:
            y = attend(q, k, v)
        else:
            y = self._recorded(q, k, v, grid, phi.shape[2:], kernel)
        y = y[:, 0].transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return x + self.out(y)

    def _recorded(self, q, k, v, grid, key_grid, kernel) -> torch.Tensor:
        request = self.recorder.request
        spacing = request.spacing_of(self.factor)
        key_factor = tuple(f * s for f, s in zip(self.factor, kernel, strict=True))
        q_pos = grid_positions(grid, spacing)
        k_pos = grid_positions(key_grid, request.spacing_of(key_factor), [(s - 1) / (2 * s) for s in kernel])
        y, dist = explicit_attention(q, k, v, None, q_pos, k_pos)
        self.report(SELF, dist.reshape(q.shape[0], 1, *grid), head=0)
        for j, point in enumerate(request.queries):
            at = int(torch.tensor(grid_index(point, self.factor, grid)).dot(_strides(grid)))
            row = attention_weights(q[:, :, at : at + 1], k)  # (B, 1, 1, Nk)
            self.recorder.put(MapId(SELF, self.site, 0, j), row.reshape(q.shape[0], 1, *key_grid), key_factor)
        return y


class SelfAttentionStage(MapSource):
    """The self-attention blocks after one encoder stage; their sites are `<site>b0`, `<site>b1`, ..."""

    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        for b in self.blocks:
            if isinstance(b, SelfAttentionBlock):
                b.keep_weights = len(self.blocks) > 1

    def place(self, site: str, factor: Sequence[int]) -> None:
        super().place(site, factor)
        for j, b in enumerate(self.blocks):
            b.place(f"{site}b{j}", factor)

    def produces(self) -> list[MapId]:
        return [m for b in self.blocks for m in b.produces()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        if self.recorder is not None and self.recorder.request.queries and len(self.blocks) > 1:
            self._rollout(x.shape[0], x.shape[2:], x.device)
        return x

    def _rollout(self, batch: int, grid, device) -> None:
        """Per query point, its attention over the stage's input positions through every block: the product of
        (A + I) / 2 with A each block's heads' mean weights, the last block first."""
        kept = [b.weights for b in self.blocks if getattr(b, "weights", None) is not None]
        if len(kept) != len(self.blocks):
            return  # non-local blocks keep no weights: their keys live on another grid
        for j, point in enumerate(self.recorder.request.queries):
            r = torch.zeros(batch, 1, *grid, device=device)
            r[(slice(None), 0, *grid_index(point, self.factor, grid))] = 1.0
            for windows, mean_weights in reversed(kept):
                moved = (windows.split(r).transpose(1, 2) @ mean_weights).transpose(1, 2)  # (B * windows, P, 1)
                r = 0.5 * r + 0.5 * windows.merge(moved, batch)
            self.recorder.put(MapId(SELF, self.site, None, j), r, self.factor)
        for b in self.blocks:
            b.weights = None


def build_self_attention(kind: str | None, spatial_dims: int, channels: int, cfg, stage: int) -> nn.Module:
    """The blocks of `kind` ("global", "window", "nonlocal") after encoder stage `stage` as `cfg` (a ModelConfig)
    describes them, with the heads pruning kept; identity for None."""
    if kind is None:
        return nn.Identity()
    depth = cfg.self_attention_depth
    if kind == "nonlocal":
        return SelfAttentionStage([NonLocalBlock(spatial_dims, channels, cfg.norm) for _ in range(depth)])
    if kind not in ("global", "window"):
        raise ValueError(f"unknown self-attention {kind!r}; expected one of {SELF_ATTENTION_KINDS}")
    size = None if kind == "global" else cfg.self_attention_window
    head_dim = channels // cfg.self_attention_heads
    return SelfAttentionStage(
        [
            SelfAttentionBlock(
                spatial_dims,
                channels,
                cfg.heads_of(f"self_enc{stage}b{j}"),
                size,
                shift=j % 2 == 1,
                head_dim=head_dim,
                top_k=cfg.self_attention_top_k,
            )
            for j in range(depth)
        ]
    )
