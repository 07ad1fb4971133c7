"""Command handlers: ``@command.new``, ``@command.argument`` and ``@command.passive``.

maubot-rs's own implementation, written from the behaviour of maubot 0.6 as described in the
project's behavioural reference (§7.3): the dispatch order, the argument matching and the usage
and help texts a plugin's users see are maubot's.

A decorated method becomes a descriptor. Reading it from a plugin instance gives a bound handler:
an async callable taking one event, with ``__mb_event_handler__`` and ``__mb_event_types__`` for
``Plugin.register_handler_class``. One handler object serves every instance of the plugin class;
the instance travels in the bound handler, never in the shared object.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterable, Pattern

from mautrix.types import EventType, MessageType

__all__ = [
    "Argument",
    "ArgumentSyntaxError",
    "CommandHandler",
    "CustomArgument",
    "PassiveCommandHandler",
    "RegexArgument",
    "SimpleArgument",
    "argument",
    "new",
    "passive",
]

# Arguments declared below ``@command.new`` wait on the plain function under this attribute until
# ``new`` wraps it.
_PENDING_ARGUMENTS = "_maubot_rs_pending_arguments"

_LEADING_WORD = re.compile(r"\S*")


def _first_word(text: str) -> str:
    """The leading run of non-whitespace characters ("" for empty or blank-led text)."""
    return _LEADING_WORD.match(text).group(0)


def _positional_arity(fn: Callable) -> float:
    """How many positional arguments ``fn`` takes (infinite with ``*args``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    count = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return float("inf")
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


def _call_with_optional_self(fn: Callable, instance: Any, *args: Any) -> Any:
    """Call ``fn(*args)``, or ``fn(instance, *args)`` when it takes one more positional argument.

    This is how ``name=`` and ``aliases=`` callables may be written either with or without
    ``self``: ``lambda: "x"`` / ``lambda self: self.config["x"]``, ``lambda alias: ...`` /
    ``lambda self, alias: ...``.
    """
    if _positional_arity(fn) > len(args):
        return fn(instance, *args)
    return fn(*args)


def _enum_key(value: Any) -> Any:
    """Compare ``MessageType.TEXT`` and ``"m.text"`` alike (mautrix enums are not ``str``)."""
    return getattr(value, "value", value)


def _type_key(value: Any) -> Any:
    """An event type's string, ignoring mautrix's event class (state, message, ...)."""
    return getattr(value, "t", _enum_key(value))


def _msgtype_allowed(evt: Any, msgtypes: Iterable[Any] | None) -> bool:
    if msgtypes is None:
        return True
    msgtype = _enum_key(getattr(evt.content, "msgtype", None))
    return msgtype is not None and any(_enum_key(allowed) == msgtype for allowed in msgtypes)


def _is_own_event(evt: Any, instance: Any) -> bool:
    """Whether the bot itself sent ``evt`` (``evt.sender`` against the client's ``mxid``)."""
    client = getattr(evt, "client", None) or getattr(instance, "client", None)
    mxid = getattr(client, "mxid", None)
    return mxid is not None and getattr(evt, "sender", None) == mxid


# Aliases whose membership test runs no plugin code.
_PLAIN_ALIASES = (str, tuple, list, set, frozenset)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _join_nonempty(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _with_help(text: str, help_text: str | None) -> str:
    return f"{text} - {help_text}" if help_text else text


# ------------------------------------------------------------------------------------------------
# Arguments


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
            return self._match_regex(val)
        if self.parser is not None:
            return self._match_parser(val)
        if self.pass_raw:
            return "", val
        word = _first_word(val)
        return val[len(word) :], word

    def _match_regex(self, val: str) -> tuple[str, Any]:
        if self.pass_raw:
            found = self.regex.match(val)
            if found is None:
                return val, None
            return val[found.end() :], self._regex_value(found)
        word = _first_word(val)
        found = self.regex.match(word)
        if found is None:
            return val, None
        return val[len(word) :], self._regex_value(found)

    @staticmethod
    def _regex_value(found: re.Match[str]) -> Any:
        groups = found.groups()
        return groups if groups else found.group(0)

    def _match_parser(self, val: str) -> tuple[str, Any]:
        if self.pass_raw:
            return self.parser(val)
        word = _first_word(val)
        value = self.parser(word)
        if value is None:
            return val, None
        return val[len(word) :], value

    def __call__(self, func: Any) -> Any:
        if isinstance(func, CommandHandler):
            func.arguments.insert(0, self)
        else:
            pending = getattr(func, _PENDING_ARGUMENTS, None)
            if pending is None:
                pending = []
                setattr(func, _PENDING_ARGUMENTS, pending)
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
    return cls(
        name, label, required=required, matches=matches, parser=parser, pass_raw=pass_raw
    )


# ------------------------------------------------------------------------------------------------
# Bound handlers


class _HandlerDescriptor:
    """Shared by command and passive handlers: binding to an instance on attribute access."""

    func: Callable

    def _copy_identity(self, func: Callable) -> None:
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                setattr(self, attribute, getattr(func, attribute))
            except AttributeError:
                pass
        self.__wrapped__ = func

    @property
    def __mb_event_handler__(self) -> bool:
        return True

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return BoundHandler(self, instance)

    async def _handle(self, instance: Any, evt: Any) -> Any:
        raise NotImplementedError

    def _ignores(self, instance: Any, evt: Any) -> bool:
        return False


class BoundHandler:
    """A handler read from an instance: ``await bound(evt)`` runs it for that instance.

    Two bound handlers are equal when they bind the same handler to the same instance, like bound
    methods, so a handler registered with mautrix can be removed with a fresh lookup.
    """

    __slots__ = ("_handler", "_instance")

    def __init__(self, handler: _HandlerDescriptor, instance: Any) -> None:
        self._handler = handler
        self._instance = instance

    @property
    def __mb_event_handler__(self) -> bool:
        return self._handler.__mb_event_handler__

    @property
    def __mb_event_types__(self) -> set:
        return self._handler.__mb_event_types__

    async def __call__(self, evt: Any) -> Any:
        return await self._handler._handle(self._instance, evt)

    def _mb_ignores(self, evt: Any) -> bool:
        """Whether calling this handler with ``evt`` certainly returns at once, doing nothing."""
        return self._handler._ignores(self._instance, evt)

    def __getattr__(self, name: str) -> Any:
        if name in BoundHandler.__slots__:
            raise AttributeError(name)
        return getattr(self._handler, name)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BoundHandler)
            and other._handler is self._handler
            and other._instance is self._instance
        )

    def __hash__(self) -> int:
        return hash((id(self._handler), id(self._instance)))

    def __repr__(self) -> str:
        return f"<bound {self._handler!r} of {self._instance!r}>"

    # maubot plugins sometimes show a command's help themselves.
    @property
    def __mb_usage__(self) -> str:
        return self._handler.usage(self._instance)

    @property
    def __mb_full_help__(self) -> str:
        return self._handler.full_help(self._instance)


# ------------------------------------------------------------------------------------------------
# Commands


class CommandHandler(_HandlerDescriptor):
    """A ``!command`` (from ``@command.new``) or one of its subcommands (``@cmd.subcommand``)."""

    def __init__(
        self,
        func: Callable,
        *,
        name: str | Callable | None = None,
        help: str | None = None,
        aliases: Iterable[str] | Callable | None = None,
        event_type: EventType = EventType.ROOM_MESSAGE,
        msgtypes: Iterable[MessageType] | None = None,
        require_subcommand: bool = True,
        arg_fallthrough: bool = True,
        must_consume_args: bool = True,
        parent: CommandHandler | None = None,
    ) -> None:
        self.func = func
        self.name = name if name is not None else func.__name__.replace("_", "-")
        self.help = help
        self.aliases = aliases
        self.event_type = event_type
        self.msgtypes = tuple(msgtypes) if msgtypes is not None else (MessageType.TEXT,)
        self.require_subcommand = require_subcommand
        self.arg_fallthrough = arg_fallthrough
        self.must_consume_args = must_consume_args
        self.parent = parent
        self.arguments: list[Argument] = list(getattr(func, _PENDING_ARGUMENTS, ()))
        self.subcommands: list[CommandHandler] = []
        self._copy_identity(func)

    @property
    def __mb_event_handler__(self) -> bool:
        # Subcommands run through their top-level command, never on their own.
        return self.parent is None

    @property
    def __mb_event_types__(self) -> set:
        return {self.event_type}

    def __repr__(self) -> str:
        name = self.name if isinstance(self.name, str) else getattr(self.func, "__name__", "?")
        return f"<CommandHandler {name!r}>"

    def subcommand(
        self,
        name: str | Callable | None = None,
        *,
        help: str | None = None,
        aliases: Iterable[str] | Callable | None = None,
        required_subcommand: bool = True,
        arg_fallthrough: bool = True,
        must_consume_args: bool = True,
        require_subcommand: bool | None = None,
    ) -> Callable[[Callable], CommandHandler]:
        """Declare a subcommand: ``@parent.subcommand("add", aliases=("plus",))``.

        maubot spells the option ``required_subcommand`` here; ``require_subcommand`` is accepted
        too and wins when both are given.
        """
        if require_subcommand is None:
            require_subcommand = required_subcommand

        def decorator(func: Callable) -> CommandHandler:
            sub = CommandHandler(
                func,
                name=name,
                help=help,
                aliases=aliases,
                event_type=self.event_type,
                msgtypes=self.msgtypes,
                require_subcommand=require_subcommand,
                arg_fallthrough=arg_fallthrough,
                must_consume_args=must_consume_args,
                parent=self,
            )
            self.subcommands.append(sub)
            return sub

        return decorator

    # -- names -------------------------------------------------------------------------------

    def name_for(self, instance: Any) -> str:
        """The command's name for ``instance`` (``name=`` may be a callable, e.g. from config)."""
        if callable(self.name):
            return _call_with_optional_self(self.name, instance)
        return self.name

    def _is_called(self, instance: Any, word: str) -> bool:
        if word == self.name_for(instance):
            return True
        aliases = self.aliases
        if aliases is None:
            return False
        if callable(aliases):
            return bool(_call_with_optional_self(aliases, instance, word))
        if isinstance(aliases, str):
            return word == aliases
        return word in aliases

    # -- help texts ----------------------------------------------------------------------------

    def _prefix(self, instance: Any) -> str:
        if self.parent is None:
            return f"!{self.name_for(instance)}"
        return f"{self.parent._prefix(instance)} {self.name_for(instance)}"

    def _arguments_usage(self) -> str:
        return " ".join(
            f"<{arg.label}>" if arg.required else f"[{arg.label}]" for arg in self.arguments
        )

    def _usage_args(self) -> str:
        """Arguments and, when they come after them, the subcommand slot."""
        subcommand = ""
        if self.subcommands and self.arg_fallthrough:
            subcommand = (
                "<subcommand> [...]" if self.require_subcommand else "[subcommand] [...]"
            )
        return _join_nonempty(self._arguments_usage(), subcommand)

    def _usage_line(self, instance: Any) -> str:
        return f"**Usage:** {_join_nonempty(self._prefix(instance), self._usage_args())}"

    def usage(self, instance: Any) -> str:
        """The short usage answered when an argument is missing or invalid."""
        text = self._usage_line(instance)
        if self.subcommands:
            names = ", ".join(str(sub.name_for(instance)) for sub in self.subcommands)
            text += f"  \n**Subcommands:** {names}"
        return text

    def full_help(self, instance: Any) -> str:
        """The help answered for a missing or unknown subcommand or for unconsumed text."""
        text = self._usage_line(instance) + "\n\n"
        if not self.require_subcommand:
            own = _join_nonempty(self._prefix(instance), self._arguments_usage())
            text += f"* {_with_help(own, self.help)}\n"
        lines = []
        for sub in self.subcommands:
            head = _join_nonempty(str(sub.name_for(instance)), sub._usage_args())
            lines.append(f"* {_with_help(head, sub.help)}")
        return text + "\n".join(lines)

    # -- dispatch ------------------------------------------------------------------------------

    def _command_text(self, instance: Any, evt: Any) -> tuple[str, str] | None:
        """The command word and the rest of a message that may call a command, else ``None``."""
        if _is_own_event(evt, instance) or not _msgtype_allowed(evt, self.msgtypes):
            return None
        body = getattr(evt.content, "body", None)
        if not isinstance(body, str) or not body.startswith("!"):
            return None
        # Only a space ends the command word, as in maubot: "!ping\nx" is not "!ping".
        word, _, rest = body[1:].partition(" ")
        return word, rest

    def _ignores(self, instance: Any, evt: Any) -> bool:
        """Whether ``_handle`` returns at once for ``evt``, known without running plugin code.

        ``False`` when unsure: the names come from a callable, or the check failed.
        """
        if self.parent is not None or callable(self.name):
            return False
        if not (self.aliases is None or isinstance(self.aliases, _PLAIN_ALIASES)):
            return False
        if type(self)._handle is not CommandHandler._handle:
            return False
        try:
            found = self._command_text(instance, evt)
            return found is None or not self._is_called(instance, found[0].lower())
        except Exception:
            return False

    async def _handle(self, instance: Any, evt: Any) -> Any:
        """Entry point for an event from the client (top-level commands only)."""
        found = self._command_text(instance, evt)
        if found is None:
            return None
        word, rest = found
        if not self._is_called(instance, word.lower()):
            return None
        return await self._run(instance, evt, rest, {})

    async def _run(self, instance: Any, evt: Any, text: str, parent_args: dict) -> Any:
        if self.subcommands and not self.arg_fallthrough:
            found, result = await self._run_subcommand(instance, evt, text, parent_args)
            if found:
                return result

        parsed = await self._parse_arguments(instance, evt, text)
        if parsed is None:
            return None
        text, values = parsed
        args = {**parent_args, **values}

        if self.subcommands and self.arg_fallthrough:
            found, result = await self._run_subcommand(instance, evt, text, args)
            if found:
                return result
            if self.require_subcommand:
                await evt.reply(self.full_help(instance))
                return None

        if self.must_consume_args and text.strip():
            await evt.reply(self.full_help(instance))
            return None

        return await _maybe_await(self.func(instance, evt, **args))

    async def _run_subcommand(
        self, instance: Any, evt: Any, text: str, args: dict
    ) -> tuple[bool, Any]:
        text = text.strip()
        word = _first_word(text)
        if not word:
            return False, None
        for sub in self.subcommands:
            # Subcommand names are matched as typed: no lower-casing (maubot quirk).
            if sub._is_called(instance, word):
                return True, await sub._run(instance, evt, text[len(word) :], args)
        return False, None

    async def _parse_arguments(
        self, instance: Any, evt: Any, text: str
    ) -> tuple[str, dict] | None:
        """Match every argument in order; ``None`` once the user has been answered."""
        values: dict[str, Any] = {}
        for arg in self.arguments:
            text = text.strip()
            try:
                text, value = await _maybe_await(arg.match(text, evt=evt, instance=instance))
            except ArgumentSyntaxError as e:
                reply = e.message
                if e.show_usage:
                    reply += "\n" + self.usage(instance)
                await evt.reply(reply)
                return None
            except ValueError:
                await evt.reply(self.usage(instance))
                return None
            if arg.required and value is None:
                await evt.reply(self.usage(instance))
                return None
            values[arg.name] = value
        return text, values


def new(
    name: str | Callable | None = None,
    *,
    help: str | None = None,
    aliases: Iterable[str] | Callable | None = None,
    event_type: EventType = EventType.ROOM_MESSAGE,
    msgtypes: Iterable[MessageType] | None = None,
    require_subcommand: bool = True,
    arg_fallthrough: bool = True,
    must_consume_args: bool = True,
) -> Any:
    """Declare a ``!command``: ``@command.new("ping", help="Ping the bot")``.

    ``name`` defaults to the method's name with ``_`` turned into ``-``; it may also be a
    callable taking nothing or ``self``. ``aliases`` is a collection of other names or a callable
    taking ``(alias)`` or ``(self, alias)`` and returning whether it is one. ``msgtypes`` defaults
    to ``m.text`` only.
    """
    if inspect.iscoroutinefunction(name):
        # Bare ``@command.new`` without parentheses.
        return new()(name)

    def decorator(func: Callable) -> CommandHandler:
        return CommandHandler(
            func,
            name=name,
            help=help,
            aliases=aliases,
            event_type=event_type,
            msgtypes=msgtypes,
            require_subcommand=require_subcommand,
            arg_fallthrough=arg_fallthrough,
            must_consume_args=must_consume_args,
        )

    return decorator


# ------------------------------------------------------------------------------------------------
# Passive commands


def _body(evt: Any) -> str:
    return evt.content.body


class _PassiveRule:
    __slots__ = ("regex", "field", "msgtypes", "event_type", "multiple")

    def __init__(
        self,
        regex: Pattern[str],
        field: Callable[[Any], str],
        msgtypes: Iterable[Any] | None,
        event_type: EventType,
        multiple: bool,
    ) -> None:
        self.regex = regex
        self.field = field
        self.msgtypes = tuple(msgtypes) if msgtypes is not None else None
        self.event_type = event_type
        self.multiple = multiple


class PassiveCommandHandler(_HandlerDescriptor):
    """A method called for every event whose text matches a regex (``@command.passive``).

    Stacked ``passive`` decorators add rules to the same handler; each matching rule calls the
    method once.
    """

    def __init__(self, func: Callable) -> None:
        self.func = func
        self.rules: list[_PassiveRule] = []
        self._copy_identity(func)

    @property
    def __mb_event_types__(self) -> set:
        return {rule.event_type for rule in self.rules}

    def __repr__(self) -> str:
        return f"<PassiveCommandHandler {getattr(self.func, '__name__', '?')!r}>"

    async def _handle(self, instance: Any, evt: Any) -> None:
        if _is_own_event(evt, instance):
            return
        check_type = len({_type_key(rule.event_type) for rule in self.rules}) > 1
        for rule in self.rules:
            if check_type and _type_key(getattr(evt, "type", None)) != _type_key(rule.event_type):
                continue
            if not _msgtype_allowed(evt, rule.msgtypes):
                continue
            data = rule.field(evt)
            if not isinstance(data, str):
                continue
            if rule.multiple:
                # maubot quirk: each tuple starts with the whole searched text, not the match.
                found = [
                    (data[m.pos : m.endpos], *m.groups()) for m in rule.regex.finditer(data)
                ]
                if found:
                    await _maybe_await(self.func(instance, evt, found))
            else:
                m = rule.regex.search(data)
                if m is not None:
                    match = (data[m.pos : m.endpos], *m.groups())
                    await _maybe_await(self.func(instance, evt, match))


def passive(
    regex: str | Pattern[str],
    *,
    msgtypes: Iterable[MessageType] | None = (MessageType.TEXT,),
    field: Callable[[Any], str] = _body,
    event_type: EventType = EventType.ROOM_MESSAGE,
    multiple: bool = False,
    case_insensitive: bool = False,
    multiline: bool = False,
    dot_all: bool = False,
) -> Callable[[Any], PassiveCommandHandler]:
    """Call the method as ``(self, evt, match)`` when ``regex`` is found in ``field(evt)``.

    ``match`` is ``(whole text, *groups)``, or with ``multiple`` a list of such tuples, one per
    match. ``msgtypes=None`` accepts events without a msgtype (e.g. reactions). The bot's own
    events are ignored.
    """
    flags = 0
    if case_insensitive:
        flags |= re.IGNORECASE
    if multiline:
        flags |= re.MULTILINE
    if dot_all:
        flags |= re.DOTALL
    if isinstance(regex, re.Pattern):
        compiled = re.compile(regex.pattern, regex.flags | flags) if flags else regex
    else:
        compiled = re.compile(regex, flags)

    def decorator(func: Any) -> PassiveCommandHandler:
        handler = func if isinstance(func, PassiveCommandHandler) else PassiveCommandHandler(func)
        # Decorators run bottom-up: inserting in front keeps the order they are written in.
        handler.rules.insert(0, _PassiveRule(compiled, field, msgtypes, event_type, multiple))
        return handler

    return decorator
