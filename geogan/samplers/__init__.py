"""Training straight from orthophotos: random georeferenced windows, no chips written.

``geogan train --a 2009/*.tif --b 2020/*.tif`` reads its samples from the rasters
themselves. Each sample is a ``crop x crop`` window drawn at random over the valid
ground of a domain:

1. a raster is picked with probability proportional to its valid pixels (inside the
   AOI; estimated once from a decimated read of its mask), so the ground is sampled
   by area, not by file;
2. a window position is drawn uniformly where windows may lie in that raster (its
   grid, cut to the AOI's bounding box and, for pairs, to the overlap with B);
3. the window is read (a windowed read, padded with nodata where it hangs over the
   raster's edge) and rejected, and another position drawn, when it leaves the AOI
   polygons, has a nodata fraction over ``--max-nodata`` or is near constant
   (``--min-std``): the rule of ``geogan tile`` (:func:`geogan.tiling.rejection`)
   with validity from the mask API (:func:`geogan.rasterio_meta.read_valid`).

A window must lie wholly inside the AOI (``geogan tile --aoi`` keeps chips that only
touch it), so ground outside it is never trained on.

Pairs (pix2pix): each A window is read from B over the same footprint on A's grid,
B resampled as ``geogan tile --pair`` does (:func:`geogan.tiling.pair_view`). Every A
raster is paired with every B raster it overlaps; rasters without a partner are
reported and left out.

Harmonisation (``--crs/--res`` or ``--align-to``) reads every raster through the
warped view of ``geogan tile``, so both domains have one ground resolution.

Randomness: sample ``i`` of the epoch draws everything (raster, position, retries,
flips) from the seed :class:`geogan.datasets.EpochSampler` gives it, a function of
the run seed, the epoch and the sample's global position only. So the windows are
the same whatever the number of loader workers, a resumed run continues the same
sequence (the position is in the train state), and each DDP rank draws its own.

Rasters are opened lazily in each process that reads (DataLoader workers included):
a sampler carries paths and grid settings, never an open dataset, across a fork.
"""

from geogan.samplers.config import WindowConfig
from geogan.samplers.dataset import RasterWindowDataset
from geogan.samplers.expand import as_inputs, expand_rasters, is_chip_folder
from geogan.samplers.opening import LAYOUTS, open_inputs, open_raster_data, scan_windows
from geogan.samplers.sampler import Window, WindowSampler, WindowSource
from geogan.samplers.scenes import estimate_valid

__all__ = ["LAYOUTS", "RasterWindowDataset", "Window", "WindowConfig", "WindowSampler",
           "WindowSource", "as_inputs", "estimate_valid", "expand_rasters", "is_chip_folder",
           "open_inputs", "open_raster_data", "scan_windows"]
