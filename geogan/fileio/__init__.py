"""Safe output handling: never overwrite without permission, never leave half-written files.

What geogan promises about a user's files, and where each promise is kept:

- :mod:`.atomic`: every output is written to a hidden temporary beside it
  (:func:`temp_path`) and renamed onto its name only once it was written, closed and
  checked without error (:func:`atomic_output`, :func:`atomic_directory`); a failed write
  removes the temporary and the previous output stays as it was. Temporaries of a process
  that died (``kill -9``, power cut) are removed by the next run over the same output
  (:func:`remove_leftovers`); they carry the writer's process id, so a running job's are
  never touched. A folder a killed job had moved aside to replace it is put back.
- :mod:`.errors`: a failed write raises :class:`~geogan.errors.OutputError` naming the
  file and the cause (:func:`write_error`); GDAL reports some write failures (a full disk
  while flushing its cache) only as error messages, which :func:`gdal_errors` turns into
  an error; free space is checked before large outputs (:func:`check_free_space`).
- :mod:`.overwrite`: ``--overwrite`` replaces a file that exists (:func:`check_output_file`)
  and a folder only if geogan made it: it carries geogan's marker and holds nothing but
  geogan's own files (:class:`FolderKind`, :func:`check_replaceable`). An input inside the
  output is always refused, and so is an output that is a file read for an input
  (:func:`check_not_read`).
- :mod:`.temp`: the temporaries' names and the checks before one takes an output's name,
  shared by :mod:`.atomic` and :mod:`.vsi`.
- :mod:`.group`: several outputs written together (a translation and a raster beside it)
  take their names together or not at all (:func:`output_group`).
- :mod:`.vsi`: an output at a GDAL path (``/vsizip/``, ``/vsimem/``, ``/vsis3/``...) is
  written as a local temporary and put there once complete: added to a local zip by way
  of a checked copy of the zip, or copied by GDAL and read back.
- :mod:`.lock`: one job at a time per output folder (:func:`output_lock`): a second one is
  refused with one line; the kernel releases a dead job's lock.
- :mod:`.faults`: the hook tests use to kill a process at each write boundary.

Everything is imported from here: ``from geogan.fileio import atomic_output``.
"""

from geogan.fileio.atomic import (
    atomic_directory,
    atomic_output,
    current_umask,
    fsync_path,
    output_folder,
    remove_leftovers,
    swap_into_place,
    temp_path,
)
from geogan.fileio.errors import (
    check_free_space,
    format_bytes,
    free_bytes,
    gdal_errors,
    is_complete_raster,
    verify_raster,
    write_error,
)
from geogan.fileio.faults import fault_point, set_fault_hook
from geogan.fileio.group import OutputGroup, output_group
from geogan.fileio.lock import lock_path, output_lock
from geogan.fileio.overwrite import (
    FolderKind,
    check_inputs_outside,
    check_not_read,
    check_output_file,
    check_replaceable,
)

__all__ = [
    "FolderKind", "OutputGroup", "atomic_directory", "atomic_output", "check_free_space",
    "check_inputs_outside", "check_not_read", "check_output_file", "check_replaceable",
    "current_umask", "fault_point", "format_bytes", "free_bytes", "fsync_path", "gdal_errors",
    "is_complete_raster", "lock_path", "output_folder", "output_group", "output_lock",
    "remove_leftovers", "set_fault_hook", "swap_into_place", "temp_path", "verify_raster",
    "write_error",
]
