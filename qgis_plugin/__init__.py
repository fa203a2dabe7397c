"""Namespace for the geogan QGIS plugin (the plugin itself is geogan_qgis/)."""
