"""Keep libtiff's own stderr lines away from the user: geogan says what failed, in one line.

libtiff prints some I/O failures (``_tiffWriteProc: No space left on device.``) straight
to stderr through its process-wide error handler, beside the error GDAL raises to
rasterio and geogan turns into its one-line message. :func:`silence_libtiff` sets that
handler to none in the libtiff this process loaded (Linux, found in ``/proc/self/maps``);
GDAL's per-file handlers, which carry the details into rasterio's errors, are untouched.
Elsewhere, or if the library cannot be found, nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def silence_libtiff() -> list[str]:
    """Set libtiff's process-wide error handler to none; the libraries it was set in."""
    import rasterio  # noqa: F401  (loads GDAL and the libtiff it links)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    libs = sorted({line.split()[-1] for line in maps.splitlines()
                   if line.split()[-1].rsplit("/", 1)[-1].startswith("libtiff")})
    done = []
    for lib in libs:
        try:
            ctypes.CDLL(lib).TIFFSetErrorHandler(None)
        except (OSError, AttributeError) as exc:  # not a libtiff we can call
            log.debug("libtiff's error handler left in %s: %s", lib, exc)
            continue
        done.append(lib)
    return done
