"""CUT's PatchNCE loss and the patch head that feeds it (Park et al., ECCV 2020).

Paper-to-code names (CUT section 3)::

    G_enc, its layers l       generator.encode(x) -> [z_l]    (nce_channels per layer)
    H_l (2-layer MLP)         PatchSampleMLP.mlps[l]
    S_l sampled locations     patch ids: up to ``num_patches`` positions per layer
    z_hat = H(G_enc(G(x)))    queries q (the translated image)
    z = H(G_enc(x))           keys k: the positive at the same location, the
                              other sampled locations of the same image as negatives
    tau = 0.07                temperature
    l(v, v+, v-)              patch_nce_loss(q, k)

The head is built from the channel counts the generator announces, not lazily at
the first forward as in the authors' code, so its weights are in the checkpoint,
the optimiser and DistributedDataParallel from the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geogan.contract.options import TRAIN

#: Sampled locations per layer and width of the head's output (CUT's defaults).
NUM_PATCHES: int = TRAIN.default_of("nce_patches")
HEAD_CHANNELS = 256
#: Temperature of the contrastive softmax.
NCE_TEMPERATURE = 0.07


def l2_normalise(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Rows of ``x`` scaled to unit length: ``(N, C) -> (N, C)``."""
    return x / (x.norm(p=2, dim=1, keepdim=True) + eps)


class PatchSampleMLP(nn.Module):
    """H: sample feature vectors at random locations and embed each with a 2-layer MLP.

    ``forward(feats)`` takes one ``(B, C_l, H_l, W_l)`` map per layer and returns, per
    layer, ``(B * P_l, HEAD_CHANNELS)`` unit vectors with ``P_l = min(num_patches,
    H_l * W_l)`` and the location ids used; passing those ids back samples the same
    locations of another image (the positives).
    """

    def __init__(self, channels: Sequence[int], out_channels: int = HEAD_CHANNELS,
                 num_patches: int = NUM_PATCHES) -> None:
        super().__init__()
        if num_patches < 1:
            raise ValueError("num_patches must be >= 1")
        self.num_patches = num_patches
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, out_channels), nn.ReLU(True),
                          nn.Linear(out_channels, out_channels))
            for c in channels)

    def forward(self, feats: Sequence[torch.Tensor],
                patch_ids: Sequence[torch.Tensor] | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(feats) != len(self.mlps):
            raise ValueError(f"{len(feats)} feature maps for a head of {len(self.mlps)} layers")
        out, ids = [], []
        for i, (feat, mlp) in enumerate(zip(feats, self.mlps, strict=True)):
            b, c, h, w = feat.shape
            flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, HW, C)
            if patch_ids is None:
                idx = torch.randperm(h * w, device=feat.device)[:self.num_patches]
            else:
                idx = patch_ids[i]
            sample = flat[:, idx, :].reshape(-1, c)  # (B * P, C), grouped by image
            out.append(l2_normalise(mlp(sample).float()))
            ids.append(idx)
        return out, ids


def patch_nce_loss(q: torch.Tensor, k: torch.Tensor, batch: int,
                   temperature: float = NCE_TEMPERATURE) -> torch.Tensor:
    """Mean PatchNCE loss of queries ``q`` against keys ``k``, both ``(batch * P, C)``.

    For each query the key at the same location is the positive and the other ``P - 1``
    keys of the same image are the negatives (CUT eq. 2, negatives from the image
    itself): a ``(P)``-way classification by softmax over cosine similarities / tau.
    The keys are treated as constants (no gradient), as in the authors' code.
    """
    q = q.float()
    k = k.detach().float()
    n, c = q.shape
    if n % batch:
        raise ValueError(f"{n} patches do not split into {batch} images")
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    qb, kb = q.view(batch, -1, c), k.view(batch, -1, c)  # (B, P, C)
    p = qb.shape[1]
    l_neg = torch.bmm(qb, kb.transpose(1, 2))  # (B, P, P): query i against key j
    # the diagonal is the positive, already in l_pos: exp(-10 / tau) is nothing
    same = torch.eye(p, dtype=torch.bool, device=q.device)[None]
    l_neg = l_neg.masked_fill(same, -10.0).view(n, p)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + P)
    target = torch.zeros(n, dtype=torch.long, device=q.device)  # the positive is class 0
    return F.cross_entropy(logits, target)
