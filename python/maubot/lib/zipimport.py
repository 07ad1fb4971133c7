"""`maubot.lib.zipimport`: the zip archive importer.

maubot carries its own copy of Python's `zipimport` module; maubot-rs imports plugin archives with
the standard library's, which is what these names are.
"""

from zipimport import ZipImportError, zipimporter

__all__ = ["ZipImportError", "zipimporter"]
