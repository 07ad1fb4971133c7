"""Command handlers: ``@command.new``, ``@command.argument`` and ``@command.passive``.

maubot-rs's own implementation of maubot 0.6's ``maubot.handlers.command``: the dispatch order,
the argument matching and the usage and help texts a plugin's users see are maubot's, as are the
``__mb_*__`` attributes plugins' help commands read.

Reading a command from an object gives a ``BoundCommand``; ``await self.cmd(evt)`` runs the whole
dispatch for that event (the ``!name`` check included), and ``remaining_val=`` skips the name check
and parses the given text instead. Arguments are in ``_arguments.py``, passive commands in
``_passive.py``.
"""

from __future__ import annotations

import inspect
from operator import attrgetter
from typing import Any, Awaitable, Callable, Iterable, List, Optional, Set, Tuple, Union

from mautrix.types import EventType, MessageType

from ._arguments import (
    PENDING_ARGUMENTS,
    Argument,
    ArgumentSyntaxError,
    CustomArgument,
    RegexArgument,
    SimpleArgument,
    argument,
    first_word,
)
from ._base import (
    BoundHandler,
    HandlerDescriptor,
    is_own_event,
    maybe_await,
    msgtype_allowed,
)
from ._passive import passive

__all__ = [
    "AliasesType",
    "Argument",
    "ArgumentSyntaxError",
    "BoundCommand",
    "BoundHandler",
    "CommandHandler",
    "CommandHandlerDecorator",
    "CommandHandlerFunc",
    "CustomArgument",
    "PassiveCommandHandlerDecorator",
    "PrefixType",
    "RegexArgument",
    "SimpleArgument",
    "argument",
    "new",
    "passive",
]

# The type names maubot's module offers for annotations.
CommandHandlerFunc = Callable[..., Awaitable[Any]]
PrefixType = Optional[Union[str, Callable[[], str], Callable[[Any], str]]]
AliasesType = Union[
    List[str], Tuple[str, ...], Set[str], Callable[[str], bool], Callable[[Any, str], bool]
]
CommandHandlerDecorator = Callable[[Union["CommandHandler", CommandHandlerFunc]], "CommandHandler"]
PassiveCommandHandlerDecorator = Callable[[CommandHandlerFunc], CommandHandlerFunc]

_SUBCOMMAND_SLOT = "<subcommand> [...]"

# Aliases whose membership test runs no plugin code.
_PLAIN_ALIASES = (tuple, list, set, frozenset)


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


def _computed(method: str) -> property:
    """An ``__mb_*__`` attribute: ``CommandHandler.<method>(instance)`` for the bound instance."""

    def get(self: _CommandAttributes) -> Any:
        command, instance = self._target()
        return getattr(command, method)(instance)

    return property(get)


class _CommandAttributes:
    """maubot's ``__mb_*__`` attributes of a command that depend on the plugin instance (a name
    may come from its config). Read from a bound command they use its instance; read from the
    class, none (and a name callable needing ``self`` fails, as in maubot)."""

    __slots__ = ()

    def _target(self) -> tuple[CommandHandler, Any]:
        raise NotImplementedError

    def _bind_sub(self, sub: CommandHandler) -> Any:
        raise NotImplementedError

    __mb_name__ = _computed("name_for")
    __mb_prefix__ = _computed("prefix")
    __mb_usage_args__ = _computed("usage_args")
    __mb_usage_without_subcommands__ = _computed("usage_without_subcommands")
    __mb_usage__ = _computed("usage")
    __mb_full_help__ = _computed("full_help")
    __mb_usage_inline__ = _computed("usage_inline")
    __mb_subcommands_list__ = _computed("subcommands_list")
    __mb_usage_subcommand__ = _SUBCOMMAND_SLOT

    @property
    def __mb_subcommands__(self) -> list:
        command, _ = self._target()
        return [self._bind_sub(sub) for sub in command.subcommands]


class CommandHandler(_CommandAttributes, HandlerDescriptor):
    """A ``!command`` (from ``@command.new``) or one of its subcommands (``@cmd.subcommand``)."""

    def __init__(
        self,
        func: Callable,
        *,
        name: PrefixType = None,
        help: str | None = None,
        aliases: AliasesType | None = None,
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
        self.arguments: list[Argument] = list(getattr(func, PENDING_ARGUMENTS, ()))
        self.subcommands: list[CommandHandler] = []
        # Subcommands run through their parent, not on their own.
        self.__mb_event_handler__ = parent is None
        self.__mb_event_types__ = {event_type}
        self._copy_identity(func)

    # maubot's names for the options, read by some plugins' help commands.
    __mb_func__ = property(attrgetter("func"))
    __mb_help__ = property(attrgetter("help"))
    __mb_arguments__ = property(attrgetter("arguments"))
    __mb_parent__ = property(attrgetter("parent"))
    __mb_require_subcommand__ = property(attrgetter("require_subcommand"))
    __mb_arg_fallthrough__ = property(attrgetter("arg_fallthrough"))
    __mb_must_consume_args__ = property(attrgetter("must_consume_args"))
    __mb_msgtypes__ = property(attrgetter("msgtypes"))
    __mb_get_name__ = property(attrgetter("name_for"))
    __mb_is_command_match__ = property(attrgetter("is_command_match"))

    def _target(self) -> tuple[CommandHandler, Any]:
        return self, None

    def _bind_sub(self, sub: CommandHandler) -> Any:
        return sub

    def _bind(self, instance: Any) -> BoundCommand:
        return BoundCommand(self, instance)

    def _add_argument(self, arg: Argument) -> None:
        self.arguments.append(arg)

    def __repr__(self) -> str:
        name = self.name if isinstance(self.name, str) else getattr(self.func, "__name__", "?")
        return f"<CommandHandler {name!r}>"

    async def __call__(self, evt: Any, **kwargs: Any) -> Any:
        """A command not read from an object (e.g. a module-level function) runs without one."""
        return await self._handle(None, evt, **kwargs)

    def subcommand(
        self,
        name: PrefixType = None,
        *,
        help: str | None = None,
        aliases: AliasesType | None = None,
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

    def is_command_match(self, instance: Any, word: str) -> bool:
        """Whether ``word`` calls this command: its name or one of its aliases.

        As in maubot, a callable ``aliases`` decides alone (the name is not compared then), and a
        single string as ``aliases`` is no alias at all.
        """
        aliases = self.aliases
        if callable(aliases):
            return bool(_call_with_optional_self(aliases, instance, word))
        if word == self.name_for(instance):
            return True
        if aliases is None or isinstance(aliases, str):
            return False
        return word in aliases

    # -- help texts (maubot's, spaces included) ------------------------------------------------

    def prefix(self, instance: Any) -> str:
        # maubot quirk: only the direct parent's name, so a sub-subcommand shows "!sub subsub".
        if self.parent is None:
            return f"!{self.name_for(instance)}"
        return f"!{self.parent.name_for(instance)} {self.name_for(instance)}"

    def usage_args(self, instance: Any = None) -> str:
        text = " ".join(
            f"<{arg.label}>" if arg.required else f"[{arg.label}]" for arg in self.arguments
        )
        if self.subcommands and self.arg_fallthrough:
            text += f" {_SUBCOMMAND_SLOT}"
        return text

    def usage_without_subcommands(self, instance: Any) -> str:
        prefix, args = self.prefix(instance), self.usage_args()
        if self.arg_fallthrough:
            return f"**Usage:** {prefix} {args}"
        if not args:
            return f"**Usage:** {prefix} [subcommand] [...]"
        return f"**Usage:** {prefix} {args} _OR_ {prefix} {_SUBCOMMAND_SLOT}"

    def subcommands_list(self, instance: Any) -> str:
        return "**Subcommands:** " + ", ".join(
            str(sub.name_for(instance)) for sub in self.subcommands
        )

    def usage(self, instance: Any) -> str:
        """The short usage answered when an argument is missing or invalid."""
        text = self.usage_without_subcommands(instance)
        if self.subcommands:
            text += "  \n" + self.subcommands_list(instance)
        return text

    def usage_inline(self, instance: Any) -> str:
        """This command's line in its parent's full help."""
        name = self.name_for(instance)
        text = f"* {name} {self.usage_args()} - {self.help}"
        if not self.arg_fallthrough:
            text += f"\n* {name} {_SUBCOMMAND_SLOT}"
        return text

    def full_help(self, instance: Any) -> str:
        """The help answered for a missing or unknown subcommand or for unconsumed text."""
        text = self.usage_without_subcommands(instance) + "\n\n"
        if not self.require_subcommand:
            text += f"* {self.prefix(instance)} {self.usage_args()} - {self.help}\n"
        return text + "\n".join(sub.usage_inline(instance) for sub in self.subcommands)

    # -- dispatch ------------------------------------------------------------------------------

    @staticmethod
    def _command_text(evt: Any) -> tuple[str, str] | None:
        """The command word and the rest of a ``!`` message, else ``None``."""
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
        if not (self.aliases is None or isinstance(self.aliases, (str, *_PLAIN_ALIASES))):
            return False
        if type(self)._handle is not CommandHandler._handle:
            return False
        try:
            if is_own_event(evt, instance) or not msgtype_allowed(evt, self.msgtypes):
                return True
            found = self._command_text(evt)
            return found is None or not self.is_command_match(instance, found[0].lower())
        except Exception:
            return False

    async def _handle(
        self,
        instance: Any,
        evt: Any,
        *,
        _existing_args: dict[str, Any] | None = None,
        remaining_val: str | None = None,
    ) -> Any:
        """Run the command for ``evt``: from the client, or called directly by the plugin.

        ``remaining_val`` is the text after the command word, given instead of the body's (the
        name is then not checked); ``_existing_args`` are passed on to the method, as a parent's
        arguments are to a subcommand.
        """
        if is_own_event(evt, instance) or not msgtype_allowed(evt, self.msgtypes):
            return None
        if remaining_val is None:
            found = self._command_text(evt)
            if found is None:
                return None
            word, remaining_val = found
            # Only the typed word is lower-cased, not the declared name (maubot quirk).
            if not self.is_command_match(instance, word.lower()):
                return None
        return await self._run(instance, evt, remaining_val, dict(_existing_args or {}))

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

        if instance is None:
            return await maybe_await(self.func(evt, **args))
        return await maybe_await(self.func(instance, evt, **args))

    async def _run_subcommand(
        self, instance: Any, evt: Any, text: str, args: dict
    ) -> tuple[bool, Any]:
        text = text.strip()
        word = first_word(text)
        if not word:
            return False, None
        for sub in self.subcommands:
            # Subcommand names are matched as typed: no lower-casing (maubot quirk).
            if sub.is_command_match(instance, word):
                return True, await sub._run(instance, evt, text[len(word) :], args)
        return False, None

    async def _parse_arguments(self, instance: Any, evt: Any, text: str) -> tuple[str, dict] | None:
        """Match every argument in order; ``None`` once the user has been answered."""
        values: dict[str, Any] = {}
        for arg in self.arguments:
            text = text.strip()
            try:
                text, value = await maybe_await(arg.match(text, evt=evt, instance=instance))
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


class BoundCommand(_CommandAttributes, BoundHandler):
    """A command read from an object: ``await bound(evt, remaining_val=..., _existing_args=...)``.

    Its ``__mb_*__`` attributes are computed for that object.
    """

    __slots__ = ()

    _handler: CommandHandler

    def _target(self) -> tuple[CommandHandler, Any]:
        return self._handler, self._instance

    def _bind_sub(self, sub: CommandHandler) -> BoundCommand:
        return BoundCommand(sub, self._instance)


def new(
    name: PrefixType = None,
    *,
    help: str | None = None,
    aliases: AliasesType | None = None,
    event_type: EventType = EventType.ROOM_MESSAGE,
    msgtypes: Iterable[MessageType] | None = None,
    require_subcommand: bool = True,
    arg_fallthrough: bool = True,
    must_consume_args: bool = True,
) -> Any:
    """Declare a ``!command``: ``@command.new("ping", help="Ping the bot")``.

    ``name`` defaults to the method's name with ``_`` turned into ``-``; it may also be a
    callable taking nothing or ``self``. ``aliases`` is a collection of other names, or a callable
    taking ``(alias)`` or ``(self, alias)`` that says whether a word calls the command (the name
    included). ``msgtypes`` defaults to ``m.text`` only.
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
