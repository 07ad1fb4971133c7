"""An instance's config as mautrix's `BaseProxyConfig` sees it: `load`, `load_base` and `save`.

The server stores the instance's YAML text; the base is `base-config.yaml` from the archive.
Both are read with ruamel's round-trip loader, so comments survive `load_and_update()`.
"""

from __future__ import annotations

import copy
import io
from typing import Callable

from mautrix.util.config import RecursiveDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(4)
    yaml.width = 200
    return yaml


yaml = _yaml()


def load_yaml(text: str | None) -> CommentedMap:
    data = yaml.load(text) if text and text.strip() else None
    return data if data is not None else CommentedMap()


def dump_yaml(data: object) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


class InstanceConfig:
    """The YAML text of one instance and the callbacks its config object is built with."""

    def __init__(
        self, text: str | None, base_text: str | None, on_save: Callable[[str], None]
    ) -> None:
        self.text = text or ""
        self.base = load_yaml(base_text) if base_text is not None else None
        self._on_save = on_save

    @property
    def base_text(self) -> str | None:
        """The base config re-dumped the way `save()` writes (what `start` returns)."""
        return dump_yaml(self.base) if self.base is not None else None

    def load(self) -> CommentedMap:
        return load_yaml(self.text)

    def load_base(self) -> RecursiveDict[CommentedMap] | None:
        if self.base is None:
            return None
        return RecursiveDict(copy.deepcopy(self.base), CommentedMap)

    def save(self, data: RecursiveDict[CommentedMap]) -> None:
        text = dump_yaml(data)
        if text != self.text:
            self.text = text
            self._on_save(text)
