"""geogan's ground floor: every fact the library, the CLI and the QGIS plugin share, stated once.

Nothing here imports anything but the standard library, and modules import each
other only relatively, so the QGIS plugin vendors this package as it is and QGIS
starts without torch or geogan installed.

* :mod:`.choices`: the names of every registry and choice list (models, generators,
  blends, normalisation modes, codecs...);
* :mod:`.options`: each command's options (name, type, default, choices, help, CLI
  flag, QGIS label), from which the CLI's click options, the plugin's Processing
  parameters and the library's config defaults are all derived;
* :mod:`.messages`: how a library message names the parameter it is about, and how
  each front end renders that name (``--tile`` in the CLI, "Tile size" in QGIS);
* :mod:`.layouts`: the training-data vocabulary, what a model family needs
  (:class:`~.layouts.Pairing`) and what the data code found (:class:`~.layouts.Layout`,
  the checkpoint's ``training.layout``);
* :mod:`.names`: file and folder names (run files, chips, index, temporaries);
* :mod:`.formats`: the output formats translate writes (suffixes, driver, georeference);
* :mod:`.checkpoint`: the checkpoint metadata schema as typed dataclasses, with its
  torch-free reader and version check;
* :mod:`.limits`: the bounds every network, weight file and normalisation is held to
  (``ngf``/``ndf`` ranges, weight types, finite float32 normalisation);
* :mod:`.protocol`: the progress and error lines ``geogan --progress json`` writes.
"""
