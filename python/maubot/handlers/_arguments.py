"""Command arguments: ``@command.argument`` and the ``Argument`` classes plugins subclass."""

from __future__ import annotations

import re
from typing import Any, Callable, Pattern

# Arguments declared below ``@command.new`` wait on the plain function under this attribute until
# ``new`` wraps it.
PENDING_ARGUMENTS = "_maubot_rs_pending_arguments"

_LEADING_WORD = re.compile(r"\S*")


def first_word(text: str) -> str:
    """The leading run of non-whitespace characters ("" for empty or blank-led text)."""
    found = _LEADING_WORD.match(text)
    return found.group(0) if found else ""


class ArgumentSyntaxError(ValueError):
    """Raised by an argument's ``match`` to answer the user with ``message``.

    With ``show_usage`` the command's usage follows the message on a new line.
    """

    def __init__(self, message: str, show_usage: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.show_usage = show_usage


class Argument:
    """One command argument; also a decorator that adds itself to a command.

    ``match(val, evt=None, instance=None)`` receives the text not yet consumed (stripped) and
    returns ``(remaining text, value)``; ``None`` as the value means "not given". Built in:

    * plain: the first whitespace-delimited word (``pass_raw``: all of the text). Empty text gives
      ``""``, which counts as given.
    * ``matches``: the regex anchored as ``^regex$`` against the first word (``pass_raw``:
      ``^regex`` against the text, consuming what matched). The value is the tuple of groups when
      the regex has any, else the matched text; no match gives ``None`` and consumes nothing.
    * ``parser``: ``parser(first word)``, the word consumed unless the result is ``None``
      (``pass_raw``: ``parser(text)`` returns ``(remaining, value)`` itself). A ``ValueError``
      makes the command answer with its usage.

    Plugins subclass this and override ``match`` for their own argument types.
    """

    def __init__(
        self,
        name: str,
        label: str | None = None,
        *,
        required: bool = False,
        matches: str | Pattern[str] | None = None,
        parser: Callable[[str], Any] | None = None,
        pass_raw: bool = False,
    ) -> None:
        self.name = name
        self.label = label or name
        self.required = required
        self.pass_raw = pass_raw
        self.matches = matches
        self.parser = parser
        # maubot's names for the compiled regex and the parser, which help commands sometimes read.
        self.matcher = parser
        self.regex = self._compile(matches, pass_raw) if matches is not None else None

    @staticmethod
    def _compile(matches: str | Pattern[str], pass_raw: bool) -> Pattern[str]:
        if isinstance(matches, re.Pattern):
            source, flags = matches.pattern, matches.flags
        else:
            source, flags = matches, 0
        return re.compile(f"^{source}" if pass_raw else f"^{source}$", flags)

    def match(self, val: str, evt: Any = None, instance: Any = None) -> tuple[str, Any]:
        if self.regex is not None:
            return self._match_regex(self.regex, val)
        if self.parser is not None:
            return self._match_parser(self.parser, val)
        if self.pass_raw:
            return "", val
        word = first_word(val)
        return val[len(word) :], word

    def _match_regex(self, regex: Pattern[str], val: str) -> tuple[str, Any]:
        if self.pass_raw:
            found = regex.match(val)
            if found is None:
                return val, None
            return val[found.end() :], self._regex_value(found)
        word = first_word(val)
        found = regex.match(word)
        if found is None:
            return val, None
        return val[len(word) :], self._regex_value(found)

    @staticmethod
    def _regex_value(found: re.Match[str]) -> Any:
        groups = found.groups()
        return groups if groups else found.group(0)

    def _match_parser(self, parser: Callable[[str], Any], val: str) -> tuple[str, Any]:
        if self.pass_raw:
            return parser(val)
        word = first_word(val)
        value = parser(word)
        if value is None:
            return val, None
        return val[len(word) :], value

    def __call__(self, func: Any) -> Any:
        add = getattr(func, "_add_argument", None)
        if add is not None:
            # Above ``@command.new``: maubot appends, so these come after the ones below it.
            add(self)
        else:
            pending = getattr(func, PENDING_ARGUMENTS, None)
            if pending is None:
                pending = []
                setattr(func, PENDING_ARGUMENTS, pending)
            # Decorators run bottom-up: inserting in front keeps the order they are written in.
            pending.insert(0, self)
        return func

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} required={self.required}>"


class SimpleArgument(Argument):
    """A plain word (or, with ``pass_raw``, all of the remaining text)."""


class RegexArgument(Argument):
    """An argument matched with ``matches=``."""


class CustomArgument(Argument):
    """An argument converted with ``parser=``."""


def argument(
    name: str,
    label: str | None = None,
    *,
    required: bool = True,
    matches: str | Pattern[str] | None = None,
    parser: Callable[[str], Any] | None = None,
    pass_raw: bool = False,
) -> Argument:
    """Declare an argument of a command: ``@command.argument("text", pass_raw=True)``.

    The method receives it as the keyword argument ``name``; ``label`` is what usage shows.
    """
    if matches is not None:
        cls: type[Argument] = RegexArgument
    elif parser is not None:
        cls = CustomArgument
    else:
        cls = SimpleArgument
    return cls(name, label, required=required, matches=matches, parser=parser, pass_raw=pass_raw)
