"""Plugin archives: the `maubot.yaml` metadata and the `.mbp` loader plugins see as `self.loader`.

An `.mbp` file is a ZIP archive with `maubot.yaml`, the plugin's top-level modules (`name.py` or
`name/__init__.py`) and any extra files. The modules are imported into the global `sys.modules`
(one worker hosts one plugin, so their names cannot clash with another plugin's).

`PluginLoader.id_cache`, in maubot every loaded plugin by ID, stays empty here: the worker knows
only its own plugin, and that one is `self.loader`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import posixpath
import sys
import traceback
import zipfile
import zipimport
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from .plugin_base import Plugin

from mautrix.types import ExtensibleEnum
from packaging.version import InvalidVersion, Version

from .__meta__ import __version__


class DatabaseType(ExtensibleEnum):
    """`database_type` in `maubot.yaml`: the legacy SQLAlchemy engine or mautrix's `Database`."""

    SQLALCHEMY = "sqlalchemy"
    ASYNCPG = "asyncpg"


def _version(value: Any) -> Version | str:
    try:
        return Version(str(value))
    except InvalidVersion:
        return str(value)


class PluginMeta:
    """The fields of `maubot.yaml`, as attributes. Unknown keys are kept in `unrecognized_`."""

    id: str
    version: Version | str
    modules: list[str]
    main_class: str
    maubot: Version | str
    database: bool
    database_type: DatabaseType
    config: bool
    webapp: bool
    license: str
    extra_files: list[str]
    dependencies: list[str]
    soft_dependencies: list[str]

    _DEFAULTS: dict[str, Any] = {
        "maubot": __version__,
        "database": False,
        "database_type": "sqlalchemy",
        "config": False,
        "webapp": False,
        "license": "",
        "extra_files": [],
        "dependencies": [],
        "soft_dependencies": [],
    }
    _REQUIRED = ("id", "version", "modules", "main_class")

    def __init__(self, data: dict[str, Any]) -> None:
        missing = [key for key in self._REQUIRED if data.get(key) is None]
        if missing:
            raise ValueError(f"maubot.yaml is missing {', '.join(missing)}")
        values = {**self._DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
        self.id = str(values["id"])
        self.version = _version(values["version"])
        self.modules = [str(module) for module in values["modules"]]
        self.main_class = str(values["main_class"])
        self.maubot = _version(values["maubot"])
        self.database = bool(values["database"])
        self.database_type = DatabaseType(values["database_type"])
        self.config = bool(values["config"])
        self.webapp = bool(values["webapp"])
        self.license = values["license"]
        self.extra_files = list(values["extra_files"])
        self.dependencies = list(values["dependencies"])
        self.soft_dependencies = list(values["soft_dependencies"])
        known = set(self._REQUIRED) | set(self._DEFAULTS)
        self.unrecognized_ = {k: v for k, v in data.items() if k not in known}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> PluginMeta:
        return cls(data)

    def serialize(self) -> dict[str, Any]:
        return {
            **self.unrecognized_,
            "id": self.id,
            "version": str(self.version),
            "modules": list(self.modules),
            "main_class": self.main_class,
            "maubot": str(self.maubot),
            "database": self.database,
            "database_type": self.database_type.value,
            "config": self.config,
            "webapp": self.webapp,
            "license": self.license,
            "extra_files": list(self.extra_files),
            "dependencies": list(self.dependencies),
            "soft_dependencies": list(self.soft_dependencies),
        }

    def __repr__(self) -> str:
        return f"PluginMeta(id={self.id!r}, version={str(self.version)!r})"


PluginClass = TypeVar("PluginClass")


class IDConflictError(Exception):
    """Another archive already has this plugin ID."""


class MaubotZipImportError(Exception):
    """An `.mbp` archive could not be read or imported."""


class PluginLoadError(MaubotZipImportError):
    """The plugin's code could not be loaded; the message is worded as maubot words it."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BasePluginLoader(ABC):
    """What a plugin sees of its archive as `self.loader`."""

    meta: PluginMeta

    @property
    @abstractmethod
    def source(self) -> str:
        """Where the plugin was loaded from (the archive's path)."""

    async def read_file(self, path: str) -> bytes:
        """A file of the archive (`KeyError` if it has none at `path`)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.sync_read_file, path)

    async def list_files(self, directory: str) -> list[str]:
        """The archive paths of the files directly in `directory`."""
        return await asyncio.get_running_loop().run_in_executor(
            None, self.sync_list_files, directory
        )

    @abstractmethod
    def sync_read_file(self, path: str) -> bytes:
        pass

    @abstractmethod
    def sync_list_files(self, directory: str) -> list[str]:
        pass


class PluginLoader(BasePluginLoader):
    """A loader the server manages, and the registry of them by plugin ID (empty here)."""

    id_cache: ClassVar[dict[str, PluginLoader]] = {}

    @classmethod
    def find(cls, plugin_id: str) -> PluginLoader:
        return cls.id_cache[plugin_id]


class ZippedPluginLoader(PluginLoader):
    """An `.mbp` archive: its files, and the import of its modules."""

    def __init__(self, path: str, meta: PluginMeta) -> None:
        self.path = path
        self.meta = meta
        self.main_class: type[Plugin] | None = None

    @property
    def source(self) -> str:
        return self.path

    def sync_read_file(self, path: str) -> bytes:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(path.lstrip("/"))

    def sync_list_files(self, directory: str) -> list[str]:
        directory = directory.strip("/")
        with zipfile.ZipFile(self.path) as archive:
            return [
                name
                for name in archive.namelist()
                if not name.endswith("/") and posixpath.dirname(name) == directory
            ]

    def load(self) -> type[Plugin]:
        """Import the modules in order and return the main class (cached after the first load)."""
        if self.main_class is not None:
            return self.main_class
        from .plugin_base import Plugin

        importer = zipimport.zipimporter(self.path)
        loaded: dict[str, Any] = {}
        for name in self.meta.modules:
            loaded[name] = self._import(importer, name)
        module_name, _, class_name = self.meta.main_class.rpartition("/")
        module_name = module_name or self.meta.modules[-1]
        module = loaded.get(module_name)
        if module is None:
            raise PluginLoadError(f"Main module {module_name} of plugin not found")
        main_class = getattr(module, class_name, None)
        if main_class is None:
            raise PluginLoadError(f"Main class {class_name} of plugin not found")
        if not isinstance(main_class, type) or not issubclass(main_class, Plugin):
            raise PluginLoadError("Main class of plugin does not extend maubot.Plugin")
        self.main_class = main_class
        return main_class

    def _import(self, importer: zipimport.zipimporter, name: str) -> Any:
        spec = importer.find_spec(name)
        if spec is None:
            raise PluginLoadError(f"Module {name} not found in file")
        if spec.loader is None:
            raise PluginLoadError(f"Module {name} not found in file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as e:
            sys.modules.pop(name, None)
            if not isinstance(e, Exception):
                raise
            raise PluginLoadError(
                f"Failed to load module {name}: {type(e).__name__}: {e}", traceback.format_exc()
            ) from e
        return module

    def unload(self) -> None:
        """Forget the plugin's modules, so that loading the archive again runs fresh code."""
        prefix = self.path + "/"
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(prefix):
                del sys.modules[name]
        # zipimport caches directory listings by path: a new file at this path needs a fresh one.
        getattr(zipimport, "_zip_directory_cache", {}).pop(self.path, None)
        self.main_class = None
