"""Output formats and codecs: names every command and the QGIS plugin share (no imports)."""

from __future__ import annotations

#: ``--compress`` codecs for the GeoTIFFs geogan writes (GDAL's names, lower case). JPEG and
#: WEBP are lossy and take 8-bit data; the LERC codecs take ``--co MAX_Z_ERROR=...``.
COMPRESSIONS: tuple[str, ...] = ("zstd", "deflate", "lzw", "lzma", "packbits", "jpeg", "webp",
                                 "lerc", "lerc_deflate", "lerc_zstd")
#: Codecs that take a PREDICTOR.
PREDICTOR_CODECS = frozenset({"zstd", "deflate", "lzw", "lzma"})
