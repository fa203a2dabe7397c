"""Normalisation statistics that do not depend on how a raster is cut into windows.

The CycleGAN/pix2pix generators use instance normalisation: every window is
normalised by its own per-channel mean and variance, so a window's colours depend on
what else it holds, and the translation depends on where the windows fall. This
module replaces each ``nn.InstanceNorm2d`` at inference time by a layer that uses
statistics given from outside:

``window``
    today's instance norm, untouched (each window its own statistics);
``global``
    one mean and variance per channel and layer for the whole raster (or for a batch
    of rasters). They are estimated from a sample of windows spread over the raster,
    read at full resolution and mirrored at the edges as translation does. The sample
    goes through the network as *one* batch whose normalisation layers compute their
    statistics over every window of the batch together (weighted to each window's
    core, without the border that window padding affects, and without nodata), and
    normalise with them. So layer k's statistics are computed on inputs already
    normalised with the global statistics of layers 1..k-1, in a single forward pass;
``dense``
    statistics that vary smoothly over the raster: a coarse grid of cells, each with
    the statistics of a window centred on it, interpolated bilinearly at every pixel
    of every layer (as Kernelized Instance Normalization, Ho et al. ECCV 2022, and
    Dense Normalization, Ho et al. ECCV 2024, do).

Statistics are a few numbers per channel per layer (per grid cell for ``dense``),
saved as JSON with the fingerprint of the generator's weights, so that a file made
for one model is refused for another.
"""

from geogan.normstats.checks import check_dense_fits, check_stats
from geogan.normstats.estimate import estimate_stats
from geogan.normstats.layers import norm_layers, prepared_for, stats_norm_class
from geogan.normstats.probe import probe
from geogan.normstats.sampling import plan_global_sample
from geogan.normstats.statsfile import (
    NormStats,
    load_stats,
    stats_path_for,
)

__all__ = ["NormStats", "check_dense_fits", "check_stats",
           "estimate_stats", "load_stats", "norm_layers", "plan_global_sample", "prepared_for",
           "probe", "stats_norm_class", "stats_path_for"]
