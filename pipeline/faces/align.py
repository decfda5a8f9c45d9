"""Face alignment: a 5-point similarity transform onto a canonical template, batched in torch.

`similarity_transform` is the least-squares similarity (rotation, uniform scale, translation; no reflection)
of Umeyama (1991) in its closed 2-D form. `align_faces` warps every frame that has a face into a
`size` x `size` RGB crop with an affine sampling grid + `grid_sample`, with no Python loop over faces: per
batch it gathers only the frame window the crop covers (uint8 rows, one `index_select`) and converts just
that to float. Faces much larger than the crop are first shrunk by an integer factor with torch's antialiased
uint8 resize, so that the bilinear sampling never shrinks by 2 or more (no aliasing).

Template: ArcFace's 112 x 112 five-point template (insightface `arcface_dst`) doubled to 224, shrunk by
`zoom` = 0.85 about the crop centre and raised by `lift` = 18 px. The plain scaled ArcFace template cuts
the chin and the face's lower edge; with these settings the whole MTCNN face box of the synthetic face
(`pipeline.synth.faces`) lands at about x 41..181, y 34..190 of the 224 crop: at least 34 px of margin on
every side, so marks at the face's edges stay inside. The template and `AlignConfig` are
`pipeline.faces.config`'s (no torch there).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.faces.config import AlignConfig


def similarity_transform(src: torch.Tensor | np.ndarray, dst: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Least-squares similarity mapping each point set of `src` (n, 5, 2) onto `dst` (5, 2).

    Returns (n, 2, 3) matrices [[a, -b, tx], [b, a, ty]] with dst ~ M @ [x, y, 1], in the dtype of `src`
    (float32 for non-float input). Computed in float64; degenerate sets (all points equal) give the zero
    linear part.
    """
    src = torch.as_tensor(src)
    dtype = src.dtype if src.is_floating_point() else torch.float32
    s = src.to(torch.float64)
    d = torch.as_tensor(dst, dtype=torch.float64, device=s.device)
    mu_s, mu_d = s.mean(dim=1, keepdim=True), d.mean(dim=0)  # (n, 1, 2), (2,)
    sc, dc = s - mu_s, d - mu_d  # (n, k, 2) centred
    var = (sc**2).sum(dim=(1, 2)).clamp_min(1e-12)  # (n,)
    a = (sc * dc).sum(dim=(1, 2)) / var  # scale * cos(angle)
    b = (sc[..., 0] * dc[..., 1] - sc[..., 1] * dc[..., 0]).sum(dim=1) / var  # scale * sin(angle)
    linear = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], 1)  # (n, 2, 2)
    shift = mu_d - (linear @ mu_s.transpose(1, 2)).squeeze(-1)  # (n, 2)
    return torch.cat([linear, shift[..., None]], dim=2).to(dtype)  # (n, 2, 3)


def _invert(m: torch.Tensor) -> torch.Tensor:
    """Inverse of affine maps (n, 2, 3)."""
    linear_inv = torch.linalg.inv(m[:, :, :2])
    return torch.cat([linear_inv, -(linear_inv @ m[:, :, 2:])], dim=2)


def _shrink(frames: torch.Tensor, k: int) -> tuple[torch.Tensor, float, float]:
    """(b, H, W, 3) uint8 shrunk about k times (antialiased); returns it and the x, y factors."""
    height, width = frames.shape[1:3]
    size = (max(height // k, 1), max(width // k, 1))
    x = frames.permute(0, 3, 1, 2)  # (b, H, W, 3) -> (b, 3, H, W), channels-last strides: uint8 fast path
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1), width / size[1], height / size[0]


def _windows(
    frames: torch.Tensor, which: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, w: int, h: int
) -> torch.Tensor:
    """Windows (b, h, w, 3) at (x0, y0) of frames[which] from contiguous frames (n, H, W, 3), which must lie
    inside the frames. One `index_select` of h rows per window on an overlapping strided view of the bytes:
    a row copy each, no per-element indexing."""
    n, height, width = frames.shape[:3]
    flat = frames.reshape(-1)
    starts = (
        (which[:, None] * height + y0[:, None] + torch.arange(h, device=frames.device)) * width + x0[:, None]
    ) * 3
    rows = flat.as_strided((flat.numel() - w * 3 + 1, w * 3), (1, 1))  # row i: the w pixels from byte i on
    return rows.index_select(0, starts.reshape(-1)).reshape(len(which), h, w, 3)


def _grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """`F.affine_grid(theta, [b, 3, size, size], align_corners=False)` (b, size, size, 2), made as one
    broadcast sum of a row's part and a column's part of the pixel centres' coordinates, both output
    coordinates at once (the same grid within float rounding). Per 224-pixel crop on one core: affine_grid's
    batched matrix product over an inner dimension of 3 took 0.56 ms; on another day, side by side, two sums
    stacked into the last dimension 0.58 ms and this 0.12."""
    c = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1  # (size,) centres
    t = theta.transpose(1, 2)[:, :, None, None, :]  # (b, 3, 1, 1, 2): x's, y's and the constant's terms
    along = c[None, None, :, None] * t[:, 0]  # (b, 1, size, 2): x along a row
    down = c[None, :, None, None] * t[:, 1] + t[:, 2]  # (b, size, 1, 2): y down a column, plus the shift
    return along + down  # (b, size, size, 2)


def _warp(
    frames: torch.Tensor, which: torch.Tensor, to_crop: torch.Tensor, k: int, size: int
) -> torch.Tensor:
    """Crops (b, 3, size, size) uint8 of frames[which]; frames (n, H, W, 3) uint8 contiguous, `to_crop`
    (b, 2, 3) maps frame pixels to crop pixels (pixel centres at integer coordinates)."""
    m = to_crop.double()  # (b, 2, 3) float64
    if k > 1:  # sample from frames shrunk k times: frame px p = (q + 0.5) * f - 0.5 for shrunk px q
        frames, fx, fy = _shrink(frames[which], k)
        which = torch.arange(len(frames), device=frames.device)
        scale = torch.tensor([fx, fy], dtype=torch.float64, device=m.device)
        m = torch.cat(
            [m[:, :, :2] * scale, (m[:, :, :2] @ (0.5 * scale - 0.5)[:, None]) + m[:, :, 2:]], dim=2
        )
    b = len(which)
    height, width = frames.shape[1:3]
    to_frame = _invert(m)  # (b, 2, 3): crop px -> frame px
    # the frame window the crop covers (its corners, one pixel of slack for bilinear sampling), one size
    # for the batch, moved inside the frame: what it then misses is outside the frame, zeros either way
    c = torch.tensor(
        [[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]]
    )
    corners = to_frame @ c.to(m).T  # (b, 2, 4)
    low = corners.amin(dim=2).floor().long() - 1  # (b, 2) x0, y0
    extent = (corners.amax(dim=2).ceil().long() + 2 - low).amax(dim=0)  # (2,) window w, h
    win_w, win_h = min(int(extent[0]), width), min(int(extent[1]), height)
    x0 = low[:, 0].clamp(0, width - win_w)
    y0 = low[:, 1].clamp(0, height - win_h)
    dev = frames.device
    window = _windows(frames, which.to(dev), x0.to(dev), y0.to(dev), win_w, win_h)  # (b, h, w, 3) uint8
    # (b, h, w, 3) -> (b, 3, h, w) float, kept in the window's channels-last strides: grid_sample reads
    # them as fast as NCHW, and the conversion then needs no transposition (on one core, per 224 crop of
    # a 720p face: 0.054 against 0.155 ms; the crops are the same)
    src = window.permute(0, 3, 1, 2).to(torch.float32)
    # theta maps output coordinates normalised to [-1, 1] to window coordinates normalised likewise
    to_window = torch.cat([to_frame, c.new_tensor([[[0, 0, 1]]]).to(m).expand(b, 1, 3)], 1)  # (b, 3, 3)
    to_window[:, 0, 2] -= x0.to(m)
    to_window[:, 1, 2] -= y0.to(m)
    out_px = torch.tensor([[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1]])
    win_norm = torch.tensor([[2 / win_w, 0, 1 / win_w - 1], [0, 2 / win_h, 1 / win_h - 1]])
    theta = win_norm.to(m) @ to_window @ out_px.to(m)  # (b, 2, 3)
    grid = _grid(theta.float().to(dev), size)  # (b, size, size, 2)
    crops = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # bilinear weights sum to at most 1 (zeros outside the window), so the values stay within 0..255
    # and need no clamp before the cast
    return crops.round_().to(torch.uint8)  # (b, 3, size, size)


def align_faces(
    frames: np.ndarray | torch.Tensor,
    landmarks: np.ndarray | torch.Tensor,
    face: np.ndarray | torch.Tensor,
    cfg: AlignConfig = AlignConfig(),
) -> torch.Tensor:
    """Aligned face crops: frames (n, H, W, 3) uint8 RGB, landmarks (n, 5, 2) frame pixels, face (n,) bool.

    Returns (n, 3, size, size) uint8 RGB on the frames' device; frames without a face get zeros.
    """
    x = torch.as_tensor(frames).contiguous()
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"frames must be (n, H, W, 3) uint8, got {tuple(x.shape)} {x.dtype}")
    n, size = len(x), cfg.size
    out = torch.zeros((n, 3, size, size), dtype=torch.uint8, device=x.device)
    idx = torch.as_tensor(face, dtype=torch.bool).reshape(n).nonzero().squeeze(1)  # (m,)
    if len(idx) == 0:
        return out
    marks = torch.as_tensor(landmarks).reshape(n, 5, 2)[idx]  # (m, 5, 2)
    to_crop = similarity_transform(marks.double(), cfg.template_points())  # (m, 2, 3) float64
    scale = torch.hypot(to_crop[:, 0, 0], to_crop[:, 1, 0]).clamp_min(1e-6)  # crop px per frame px
    shrink = (1.0 / scale).floor().clamp(1, cfg.max_shrink).long()  # (m,)
    for k in shrink.unique().tolist():  # a few shrink factors, not one pass per face
        group = (shrink == k).nonzero().squeeze(1)
        for first in range(0, len(group), cfg.batch_size):
            part = group[first : first + cfg.batch_size]
            which = idx[part].to(x.device)
            out[which] = _warp(x, which, to_crop[part], int(k), size)
    return out
