"""geogan: translate georeferenced imagery from one look to another with GANs.

Importing the package is cheap: it imports neither torch nor rasterio. The
library modules (``geogan.tiling``, ``geogan.train``, ``geogan.translate`` ...)
load those when they are imported.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger("geogan").addHandler(logging.NullHandler())

__all__ = ["__version__"]
