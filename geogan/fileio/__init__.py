"""Safe output handling (being split into modules of one purpose each)."""

from geogan.fileio.errors import (
    FolderKind,
    atomic_directory,
    atomic_output,
    check_free_space,
    check_inputs_outside,
    check_output_file,
    check_replaceable,
    current_umask,
    fault_point,
    format_bytes,
    free_bytes,
    fsync_path,
    gdal_errors,
    is_complete_raster,
    remove_leftovers,
    set_fault_hook,
    temp_path,
    verify_raster,
    write_error,
)

__all__ = [
    "FolderKind", "atomic_directory", "atomic_output", "check_free_space",
    "check_inputs_outside", "check_output_file", "check_replaceable", "current_umask",
    "fault_point", "format_bytes", "free_bytes", "fsync_path", "gdal_errors",
    "is_complete_raster", "remove_leftovers", "set_fault_hook", "temp_path", "verify_raster",
    "write_error",
]
