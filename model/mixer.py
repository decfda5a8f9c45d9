"""The MLP-Mixer block: token mixing across all tokens, then channel mixing, both pre-norm and residual.

Source: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision" (NeurIPS 2021) and
google-research `vit_jax/models_mixer.py` (`MlpBlock`, `MixerBlock`, sizes named `tokens_mlp_dim`,
`channels_mlp_dim`). Here the tokens are space-time tubelets, so token mixing mixes space and time jointly.
"""

from __future__ import annotations

import torch
from torch import nn


class MlpBlock(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout over the last axis."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MixerBlock(nn.Module):
    """One mixer block over (B, N, D): N tokens of width D."""

    def __init__(
        self, num_tokens: int, dim: int, token_mlp_dim: int, channel_mlp_dim: int, dropout: float = 0.0
    ):
        super().__init__()
        self.token_norm = nn.LayerNorm(dim)
        self.token_mixing = MlpBlock(num_tokens, token_mlp_dim, dropout)
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_mixing = MlpBlock(dim, channel_mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.token_norm(x).transpose(1, 2)  # (B, N, D) -> (B, D, N)
        x = x + self.token_mixing(y).transpose(1, 2)  # mix along N, back to (B, N, D)
        return x + self.channel_mixing(self.channel_norm(x))  # mix along D
