"""maubot.handlers.command: dispatch, arguments, help texts, passive commands.

The expected help texts, spaces included, are what maubot 0.6.0 answers.
"""

from __future__ import annotations

import inspect
import re
import unittest
from typing import Any

from mautrix.types import EventType, MessageType

from maubot.handlers import command

from .handler_fakes import BOT, Registry, message, reaction, run


async def send(plugin: Any, body: str, **kwargs: Any):
    """Register ``plugin``'s handlers, dispatch one message and return the event."""
    registry = Registry()
    registry.register(plugin)
    evt = message(body, **kwargs)
    await registry.dispatch(evt)
    return evt


def say(plugin: Any, body: str, **kwargs: Any):
    return run(send(plugin, body, **kwargs))


class Recorder:
    """Base for test plugins: ``calls`` collects ``(handler name, kwargs)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def record(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))


# ------------------------------------------------------------------------------------------------
# Matching the command word


class Basic(Recorder):
    @command.new("ping", help="Ping the bot")
    async def ping(self, evt) -> None:
        self.record("ping")

    @command.new()
    async def do_thing(self, evt) -> None:
        self.record("do-thing")

    @command.new("notices", msgtypes=(MessageType.NOTICE, MessageType.EMOTE))
    async def notices(self, evt) -> None:
        self.record("notices")

    @command.new("Upper")
    async def upper(self, evt) -> None:
        self.record("Upper")


class CommandWordTest(unittest.TestCase):
    def test_plain_command(self) -> None:
        bot = Basic()
        evt = say(bot, "!ping")
        self.assertEqual(bot.calls, [("ping", {})])
        self.assertEqual(evt.replies, [])

    def test_top_level_command_is_lower_cased(self) -> None:
        bot = Basic()
        say(bot, "!PiNg")
        self.assertEqual(bot.calls, [("ping", {})])

    def test_name_itself_is_not_lower_cased(self) -> None:
        # Quirk 10: the typed word is lower-cased, the declared name is not, so "Upper" is
        # unreachable.
        bot = Basic()
        say(bot, "!Upper")
        say(bot, "!upper")
        self.assertEqual(bot.calls, [])

    def test_not_a_command(self) -> None:
        bot = Basic()
        for body in ("ping", "!pingx", "! ping", " !ping", "* !ping", "!ping\nmore", ""):
            say(bot, body)
        self.assertEqual(bot.calls, [])

    def test_default_name_from_function_name(self) -> None:
        bot = Basic()
        say(bot, "!do-thing")
        say(bot, "!do_thing")
        self.assertEqual(bot.calls, [("do-thing", {})])

    def test_own_messages_are_ignored(self) -> None:
        bot = Basic()
        evt = say(bot, "!ping", sender=BOT)
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, [])

    def test_only_text_messages_by_default(self) -> None:
        bot = Basic()
        say(bot, "!ping", msgtype=MessageType.NOTICE)
        say(bot, "!ping", msgtype=MessageType.EMOTE)
        self.assertEqual(bot.calls, [])

    def test_msgtypes(self) -> None:
        bot = Basic()
        say(bot, "!notices", msgtype=MessageType.NOTICE)
        say(bot, "!notices", msgtype=MessageType.EMOTE)
        say(bot, "!notices")
        self.assertEqual(bot.calls, [("notices", {}), ("notices", {})])

    def test_must_consume_args(self) -> None:
        bot = Basic()
        evt = say(bot, "!ping extra")
        self.assertEqual(bot.calls, [])
        # maubot's usage line keeps the space before the (empty) arguments.
        self.assertEqual(evt.replies, ["**Usage:** !ping \n\n"])

    def test_trailing_spaces_are_not_arguments(self) -> None:
        bot = Basic()
        evt = say(bot, "!ping   ")
        self.assertEqual(bot.calls, [("ping", {})])
        self.assertEqual(evt.replies, [])


def prefix_name() -> str:
    return "zero"


class Names(Recorder):
    prefix = "cfg"

    @command.new(name=prefix_name)
    async def zero_args(self, evt) -> None:
        self.record("zero")

    def get_name(self) -> str:
        return self.prefix

    @command.new(name=get_name, aliases=("cfg-alias", "other"))
    async def from_method(self, evt) -> None:
        self.record("cfg")

    @command.new("lam", aliases=lambda alias: alias.startswith("lam"))
    async def lam(self, evt) -> None:
        self.record("lam")

    @command.new(
        name=lambda self: self.prefix + "2",
        aliases=lambda self, alias: alias == self.prefix + "3",
    )
    async def with_self(self, evt) -> None:
        self.record("with-self")

    @command.new("nothing", must_consume_args=False)
    async def nothing(self, evt) -> None:
        self.record("nothing")


class NamesTest(unittest.TestCase):
    def test_zero_argument_name_callable(self) -> None:
        bot = Names()
        say(bot, "!zero")
        self.assertEqual(bot.calls, [("zero", {})])

    def test_name_callable_taking_self(self) -> None:
        bot = Names()
        say(bot, "!cfg")
        bot.prefix = "changed"
        say(bot, "!cfg")
        say(bot, "!changed")
        self.assertEqual(bot.calls, [("cfg", {}), ("cfg", {})])

    def test_alias_collection(self) -> None:
        bot = Names()
        say(bot, "!cfg-alias")
        say(bot, "!OTHER")
        say(bot, "!cfg-other")
        self.assertEqual(bot.calls, [("cfg", {}), ("cfg", {})])

    def test_alias_callable_without_self(self) -> None:
        bot = Names()
        say(bot, "!lamb")
        say(bot, "!LAMBDA")
        self.assertEqual(bot.calls, [("lam", {}), ("lam", {})])

    def test_alias_callable_with_self(self) -> None:
        bot = Names()
        say(bot, "!cfg3")
        say(bot, "!cfg4")
        self.assertEqual(bot.calls, [("with-self", {})])

    def test_alias_callable_decides_alone(self) -> None:
        # maubot quirk: with a callable ``aliases`` the name itself is not compared.
        bot = Names()
        say(bot, "!cfg2")
        self.assertEqual(bot.calls, [])

    def test_must_consume_args_false(self) -> None:
        bot = Names()
        evt = say(bot, "!nothing left over")
        self.assertEqual(bot.calls, [("nothing", {})])
        self.assertEqual(evt.replies, [])


# ------------------------------------------------------------------------------------------------
# Arguments


class Hex(command.Argument):
    """A custom argument type using the event and the instance, as the reminder plugin does."""

    def match(self, val: str, evt=None, instance=None):
        word, _, rest = val.partition(" ")
        if word == "bad":
            raise command.ArgumentSyntaxError("That is not hex.")
        if word == "quiet":
            raise command.ArgumentSyntaxError("Not hex, and no usage.", show_usage=False)
        instance.seen.append(evt.event_id)
        try:
            return rest, int(word, 16)
        except ValueError:
            return val, None


def pair(text: str) -> tuple[str, tuple[str, str]]:
    """A raw parser: takes two words, leaves the rest."""
    words = text.split(" ", 2)
    if len(words) < 2:
        raise ValueError("need two words")
    return (words[2] if len(words) > 2 else ""), (words[0], words[1])


def positive(word: str) -> int | None:
    number = int(word)
    return number if number > 0 else None


class Args(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    @command.new("two")
    @command.argument("first")
    @command.argument("second")
    async def two(self, evt, first, second) -> None:
        self.record("two", first=first, second=second)

    @command.new("opt")
    @command.argument("word", required=False)
    async def opt(self, evt, word) -> None:
        self.record("opt", word=word)

    @command.new("raw")
    @command.argument("first")
    @command.argument("text", pass_raw=True)
    async def raw(self, evt, first, text) -> None:
        self.record("raw", first=first, text=text)

    @command.new("num")
    @command.argument("n", matches=r"\d+")
    async def num(self, evt, n) -> None:
        self.record("num", n=n)

    @command.new("range")
    @command.argument("bounds", matches=r"(\d+)-(\d+)")
    async def range_(self, evt, bounds) -> None:
        self.record("range", bounds=bounds)

    @command.new("maybe")
    @command.argument("n", matches=r"\d+", required=False)
    @command.argument("word", required=False)
    async def maybe(self, evt, n, word) -> None:
        self.record("maybe", n=n, word=word)

    @command.new("rawre")
    @command.argument("head", matches=r"(\w+):", pass_raw=True)
    @command.argument("tail", pass_raw=True, required=False)
    async def rawre(self, evt, head, tail) -> None:
        self.record("rawre", head=head, tail=tail)

    @command.new("int")
    @command.argument("value", "number", parser=int)
    async def int_(self, evt, value) -> None:
        self.record("int", value=value)

    @command.new("pos")
    @command.argument("value", parser=positive, required=False)
    @command.argument("rest", pass_raw=True, required=False)
    async def pos(self, evt, value, rest) -> None:
        self.record("pos", value=value, rest=rest)

    @command.new("pair")
    @command.argument("words", parser=pair, pass_raw=True)
    @command.argument("rest", pass_raw=True, required=False)
    async def pair_(self, evt, words, rest) -> None:
        self.record("pair", words=words, rest=rest)

    @command.new("hex")
    @Hex("value", "hex number", required=True)
    @command.argument("note", required=False)
    async def hex_(self, evt, value, note) -> None:
        self.record("hex", value=value, note=note)

    # Argument decorators above ``new`` come after those below it (maubot appends them).
    @command.argument("a")
    @command.new("above")
    @command.argument("b")
    async def above(self, evt, a, b) -> None:
        self.record("above", a=a, b=b)


class ArgumentTest(unittest.TestCase):
    def test_words_in_order(self) -> None:
        bot = Args()
        say(bot, "!two  alpha   beta ")
        self.assertEqual(bot.calls, [("two", {"first": "alpha", "second": "beta"})])

    def test_required_argument_accepts_empty_string(self) -> None:
        # Quirk 9: an empty rest gives "", which does not count as missing.
        bot = Args()
        evt = say(bot, "!two")
        say(bot, "!two alpha")
        self.assertEqual(evt.replies, [])
        self.assertEqual(
            bot.calls,
            [("two", {"first": "", "second": ""}), ("two", {"first": "alpha", "second": ""})],
        )

    def test_leftover_words_give_full_help(self) -> None:
        bot = Args()
        evt = say(bot, "!two a b c")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, ["**Usage:** !two <first> <second>\n\n"])

    def test_optional_plain_argument(self) -> None:
        bot = Args()
        say(bot, "!opt")
        say(bot, "!opt word")
        self.assertEqual(bot.calls, [("opt", {"word": ""}), ("opt", {"word": "word"})])

    def test_pass_raw_takes_the_rest(self) -> None:
        bot = Args()
        say(bot, "!raw first  the rest\nof it  ")
        say(bot, "!raw first")
        self.assertEqual(
            bot.calls,
            [
                ("raw", {"first": "first", "text": "the rest\nof it"}),
                ("raw", {"first": "first", "text": ""}),
            ],
        )

    def test_regex_without_groups(self) -> None:
        bot = Args()
        say(bot, "!num 42")
        evt = say(bot, "!num 42x")
        empty = say(bot, "!num")
        self.assertEqual(bot.calls, [("num", {"n": "42"})])
        self.assertEqual(evt.replies, ["**Usage:** !num <n>"])
        self.assertEqual(empty.replies, ["**Usage:** !num <n>"])

    def test_regex_with_groups(self) -> None:
        bot = Args()
        say(bot, "!range 3-14")
        evt = say(bot, "!range 3-")
        self.assertEqual(bot.calls, [("range", {"bounds": ("3", "14")})])
        self.assertEqual(evt.replies, ["**Usage:** !range <bounds>"])

    def test_optional_regex_leaves_the_word(self) -> None:
        bot = Args()
        say(bot, "!maybe 7 seven")
        say(bot, "!maybe seven")
        self.assertEqual(
            bot.calls,
            [("maybe", {"n": "7", "word": "seven"}), ("maybe", {"n": None, "word": "seven"})],
        )

    def test_raw_regex_consumes_its_match(self) -> None:
        bot = Args()
        say(bot, "!rawre key: some value")
        evt = say(bot, "!rawre no colon")
        self.assertEqual(bot.calls, [("rawre", {"head": ("key",), "tail": "some value"})])
        self.assertEqual(evt.replies, ["**Usage:** !rawre <head> [tail]"])

    def test_parser(self) -> None:
        bot = Args()
        say(bot, "!int 12")
        self.assertEqual(bot.calls, [("int", {"value": 12})])

    def test_parser_value_error_replies_usage(self) -> None:
        bot = Args()
        evt = say(bot, "!int twelve")
        empty = say(bot, "!int")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, ["**Usage:** !int <number>"])
        self.assertEqual(empty.replies, ["**Usage:** !int <number>"])

    def test_parser_returning_none_consumes_nothing(self) -> None:
        bot = Args()
        say(bot, "!pos 5 left")
        say(bot, "!pos -5 left")
        self.assertEqual(
            bot.calls,
            [("pos", {"value": 5, "rest": "left"}), ("pos", {"value": None, "rest": "-5 left"})],
        )

    def test_raw_parser(self) -> None:
        bot = Args()
        say(bot, "!pair a b c d")
        evt = say(bot, "!pair a")
        self.assertEqual(bot.calls, [("pair", {"words": ("a", "b"), "rest": "c d"})])
        self.assertEqual(evt.replies, ["**Usage:** !pair <words> [rest]"])

    def test_custom_argument_gets_event_and_instance(self) -> None:
        bot = Args()
        evt = say(bot, "!hex ff note")
        self.assertEqual(bot.calls, [("hex", {"value": 255, "note": "note"})])
        self.assertEqual(bot.seen, [evt.event_id])

    def test_custom_argument_none_replies_usage(self) -> None:
        bot = Args()
        evt = say(bot, "!hex zz")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, ["**Usage:** !hex <hex number> [note]"])

    def test_argument_syntax_error_with_usage(self) -> None:
        bot = Args()
        evt = say(bot, "!hex bad")
        self.assertEqual(evt.replies, ["That is not hex.\n**Usage:** !hex <hex number> [note]"])

    def test_argument_syntax_error_without_usage(self) -> None:
        bot = Args()
        evt = say(bot, "!hex quiet")
        self.assertEqual(evt.replies, ["Not hex, and no usage."])
        self.assertEqual(bot.calls, [])

    def test_argument_decorators_above_new(self) -> None:
        bot = Args()
        say(bot, "!above 1 2")
        self.assertEqual(bot.calls, [("above", {"a": "2", "b": "1"})])
        self.assertEqual([arg.name for arg in bot.above.__mb_arguments__], ["b", "a"])

    def test_argument_factory_defaults(self) -> None:
        arg = command.argument("name")
        self.assertTrue(arg.required)
        self.assertEqual(arg.label, "name")
        self.assertIsInstance(arg, command.Argument)
        self.assertEqual(arg.match("one two"), (" two", "one"))
        self.assertEqual(command.argument("x", pass_raw=True).match("one two"), ("", "one two"))
        regex = command.argument("x", matches=r"o(n)e")
        self.assertEqual(regex.match("one two"), (" two", ("n",)))
        self.assertEqual(command.argument("x", parser=int).match("1 2"), (" 2", 1))
        self.assertTrue(issubclass(command.ArgumentSyntaxError, ValueError))


# ------------------------------------------------------------------------------------------------
# Subcommands


class Calc(Recorder):
    @command.new("calc", help="Calculate")
    async def calc(self, evt) -> None:
        self.record("calc")

    @calc.subcommand("add", help="Add two numbers", aliases=("plus", "sum"))
    @command.argument("a", parser=int)
    @command.argument("b", parser=int)
    async def add(self, evt, a, b) -> None:
        self.record("add", a=a, b=b)

    @calc.subcommand(help="Multiply", aliases=lambda alias: alias == "times")
    @command.argument("a", parser=int)
    @command.argument("b", parser=int)
    async def mul(self, evt, a, b) -> None:
        self.record("mul", a=a, b=b)


class Remind(Recorder):
    """Like the reminder plugin: arguments first unless a subcommand is named."""

    @command.new("remind", help="Set a reminder", require_subcommand=False, arg_fallthrough=False)
    @command.argument("when")
    @command.argument("message", pass_raw=True, required=False)
    async def remind(self, evt, when, message) -> None:
        self.record("remind", when=when, message=message)

    @remind.subcommand("list", help="List reminders", aliases=("ls",))
    async def list_(self, evt) -> None:
        self.record("list")

    @remind.subcommand("cancel", help="Cancel a reminder")
    @command.argument("id", parser=int)
    async def cancel(self, evt, id) -> None:
        self.record("cancel", id=id)


class Rooms(Recorder):
    """Parent arguments, optional subcommands and nesting."""

    @command.new("room", help="Show a room", require_subcommand=False)
    @command.argument("room_id")
    async def room(self, evt, room_id) -> None:
        self.record("room", room_id=room_id)

    @room.subcommand("topic", help="Topic commands", required_subcommand=True)
    async def topic(self, evt, room_id) -> None:
        self.record("topic", room_id=room_id)

    @topic.subcommand("set", help="Set the topic")
    @command.argument("text", pass_raw=True)
    async def topic_set(self, evt, room_id, text) -> None:
        self.record("topic set", room_id=room_id, text=text)

    @room.subcommand("members")
    async def members(self, evt, room_id) -> None:
        self.record("members", room_id=room_id)


CALC_HELP = (
    "**Usage:** !calc  <subcommand> [...]\n\n"
    "* add <a> <b> - Add two numbers\n"
    "* mul <a> <b> - Multiply"
)


class SubcommandTest(unittest.TestCase):
    def test_subcommand(self) -> None:
        bot = Calc()
        say(bot, "!calc add 2 3")
        say(bot, "!CALC add 4 5")
        self.assertEqual(bot.calls, [("add", {"a": 2, "b": 3}), ("add", {"a": 4, "b": 5})])

    def test_subcommand_aliases(self) -> None:
        bot = Calc()
        say(bot, "!calc plus 1 1")
        say(bot, "!calc sum 1 2")
        say(bot, "!calc times 2 2")
        # A callable ``aliases`` decides alone: "mul", the name, is not among them.
        evt = say(bot, "!calc mul 2 2")
        self.assertEqual(
            bot.calls,
            [("add", {"a": 1, "b": 1}), ("add", {"a": 1, "b": 2}), ("mul", {"a": 2, "b": 2})],
        )
        self.assertEqual(evt.replies, [CALC_HELP])

    def test_subcommands_are_case_sensitive(self) -> None:
        # Quirk 10: only the top-level command word is lower-cased.
        bot = Calc()
        evt = say(bot, "!calc Add 1 2")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, [CALC_HELP])

    def test_missing_subcommand_replies_full_help(self) -> None:
        bot = Calc()
        evt = say(bot, "!calc")
        unknown = say(bot, "!calc div 1 2")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, [CALC_HELP])
        self.assertEqual(unknown.replies, [CALC_HELP])

    def test_subcommand_usage_has_the_full_prefix(self) -> None:
        bot = Calc()
        evt = say(bot, "!calc add 1")
        bad = say(bot, "!calc times x 1")
        self.assertEqual(evt.replies, ["**Usage:** !calc add <a> <b>"])
        self.assertEqual(bad.replies, ["**Usage:** !calc mul <a> <b>"])

    def test_subcommand_leftover_replies_its_full_help(self) -> None:
        bot = Calc()
        evt = say(bot, "!calc add 1 2 3")
        self.assertEqual(bot.calls, [])
        self.assertEqual(evt.replies, ["**Usage:** !calc add <a> <b>\n\n"])

    def test_subcommands_are_not_registered_on_their_own(self) -> None:
        bot = Calc()
        registry = Registry()
        registry.register(bot)
        self.assertEqual(registry.handlers, {EventType.ROOM_MESSAGE: [bot.calc]})
        self.assertFalse(bot.add.__mb_event_handler__)
        say(bot, "!add 1 2")
        self.assertEqual(bot.calls, [])

    def test_usage_lists_subcommands(self) -> None:
        bot = Calc()
        self.assertEqual(
            bot.calc.__mb_usage__,
            "**Usage:** !calc  <subcommand> [...]  \n**Subcommands:** add, mul",
        )
        self.assertEqual(bot.calc.__mb_full_help__, CALC_HELP)

    def test_arguments_before_subcommands_without_fallthrough(self) -> None:
        bot = Remind()
        say(bot, "!remind list")
        say(bot, "!remind ls")
        say(bot, "!remind cancel 3")
        say(bot, "!remind tomorrow buy milk")
        say(bot, "!remind tomorrow list")
        self.assertEqual(
            bot.calls,
            [
                ("list", {}),
                ("list", {}),
                ("cancel", {"id": 3}),
                ("remind", {"when": "tomorrow", "message": "buy milk"}),
                ("remind", {"when": "tomorrow", "message": "list"}),
            ],
        )

    def test_help_without_fallthrough(self) -> None:
        bot = Remind()
        self.assertEqual(
            bot.remind.__mb_usage__,
            "**Usage:** !remind <when> [message] _OR_ !remind <subcommand> [...]  \n"
            "**Subcommands:** list, cancel",
        )
        self.assertEqual(
            bot.remind.__mb_full_help__,
            "**Usage:** !remind <when> [message] _OR_ !remind <subcommand> [...]\n\n"
            "* !remind <when> [message] - Set a reminder\n"
            "* list  - List reminders\n"
            "* cancel <id> - Cancel a reminder",
        )
        evt = say(bot, "!remind cancel soon")
        self.assertEqual(evt.replies, ["**Usage:** !remind cancel <id>"])

    def test_parent_arguments_reach_subcommands(self) -> None:
        bot = Rooms()
        say(bot, "!room !abc:hs members")
        say(bot, "!room !abc:hs topic set Hello  world")
        self.assertEqual(
            bot.calls,
            [
                ("members", {"room_id": "!abc:hs"}),
                ("topic set", {"room_id": "!abc:hs", "text": "Hello  world"}),
            ],
        )

    def test_optional_subcommand_calls_the_command(self) -> None:
        bot = Rooms()
        say(bot, "!room !abc:hs")
        self.assertEqual(bot.calls, [("room", {"room_id": "!abc:hs"})])

    def test_optional_subcommand_still_consumes_args(self) -> None:
        bot = Rooms()
        evt = say(bot, "!room !abc:hs nonsense")
        self.assertEqual(bot.calls, [])
        self.assertEqual(
            evt.replies,
            [
                "**Usage:** !room <room_id> <subcommand> [...]\n\n"
                "* !room <room_id> <subcommand> [...] - Show a room\n"
                "* topic  <subcommand> [...] - Topic commands\n"
                "* members  - None"
            ],
        )

    def test_maubot_spelling_required_subcommand(self) -> None:
        bot = Rooms()
        evt = say(bot, "!room !abc:hs topic")
        self.assertEqual(bot.calls, [])
        self.assertEqual(
            evt.replies,
            ["**Usage:** !room topic  <subcommand> [...]\n\n* set <text> - Set the topic"],
        )


# ------------------------------------------------------------------------------------------------
# Passive commands


class Passive(Recorder):
    @command.passive(r"\bhello\b", case_insensitive=True)
    async def hello(self, evt, match) -> None:
        self.record("hello", match=match)

    @command.passive(r"(\d+)\+(\d+)")
    async def sums(self, evt, match) -> None:
        self.record("sums", match=match)

    @command.passive(r"#(\w+)", multiple=True)
    async def tags(self, evt, match) -> None:
        self.record("tags", match=match)

    @command.passive(r"^start.end$", multiline=True, dot_all=True, msgtypes=(MessageType.NOTICE,))
    async def flags(self, evt, match) -> None:
        self.record("flags", match=match)

    @command.passive(
        r"^👍$",
        field=lambda evt: evt.content.relates_to.key,
        event_type=EventType.REACTION,
        msgtypes=None,
    )
    async def thumbs(self, evt, match) -> None:
        self.record("thumbs", match=match)

    @command.passive("foo")
    @command.passive("bar")
    async def stacked(self, evt, match) -> None:
        self.record("stacked", match=match)


async def dispatch(plugin: Any, evt) -> None:
    registry = Registry()
    registry.register(plugin)
    await registry.dispatch(evt)


class PassiveTest(unittest.TestCase):
    def test_match_tuple_starts_with_whole_text(self) -> None:
        # Quirk 11: the first element is the whole text, not the matched part.
        bot = Passive()
        say(bot, "well HELLO there")
        self.assertEqual(bot.calls, [("hello", {"match": ("well HELLO there",)})])

    def test_groups_follow_the_whole_text(self) -> None:
        bot = Passive()
        say(bot, "what is 2+3?")
        self.assertEqual(bot.calls, [("sums", {"match": ("what is 2+3?", "2", "3")})])

    def test_no_match(self) -> None:
        bot = Passive()
        say(bot, "othello")
        self.assertEqual(bot.calls, [])

    def test_case_sensitive_by_default(self) -> None:
        bot = Passive()
        say(bot, "FOO")
        self.assertEqual(bot.calls, [])

    def test_multiple(self) -> None:
        bot = Passive()
        say(bot, "#a and #b")
        self.assertEqual(bot.calls, [("tags", {"match": [("#a and #b", "a"), ("#a and #b", "b")]})])

    def test_flags_and_msgtypes(self) -> None:
        bot = Passive()
        say(bot, "x\nstart\nend\ny", msgtype=MessageType.NOTICE)
        say(bot, "x\nstart\nend\ny")
        self.assertEqual(bot.calls, [("flags", {"match": ("x\nstart\nend\ny",)})])

    def test_default_msgtypes_is_text_only(self) -> None:
        bot = Passive()
        say(bot, "hello", msgtype=MessageType.NOTICE)
        say(bot, "hello", msgtype=MessageType.EMOTE)
        self.assertEqual(bot.calls, [])

    def test_field_and_no_msgtype_filter(self) -> None:
        bot = Passive()
        run(dispatch(bot, reaction("👍")))
        run(dispatch(bot, reaction("👎")))
        self.assertEqual(bot.calls, [("thumbs", {"match": ("👍",)})])

    def test_own_events_are_ignored(self) -> None:
        bot = Passive()
        say(bot, "hello", sender=BOT)
        run(dispatch(bot, reaction("👍", sender=BOT)))
        self.assertEqual(bot.calls, [])

    def test_stacked_passives_each_match(self) -> None:
        bot = Passive()
        say(bot, "foo")
        say(bot, "foo bar")
        self.assertEqual(
            bot.calls,
            [
                ("stacked", {"match": ("foo",)}),
                ("stacked", {"match": ("foo bar",)}),
                ("stacked", {"match": ("foo bar",)}),
            ],
        )

    def test_event_types(self) -> None:
        bot = Passive()
        self.assertTrue(bot.thumbs.__mb_event_handler__)
        self.assertEqual(bot.thumbs.__mb_event_types__, {EventType.REACTION})
        self.assertEqual(bot.hello.__mb_event_types__, {EventType.ROOM_MESSAGE})

    def test_precompiled_pattern_keeps_its_own_flags(self) -> None:
        # As in maubot, the flag options only apply to a regex given as a string.
        class Compiled(Recorder):
            @command.passive(re.compile("abc"), case_insensitive=True)
            async def abc(self, evt, match) -> None:
                self.record("abc", match=match)

        bot = Compiled()
        say(bot, "xABCx")
        say(bot, "xabcx")
        self.assertEqual(bot.calls, [("abc", {"match": ("xabcx",)})])


# ------------------------------------------------------------------------------------------------
# Binding to instances


class BindingTest(unittest.TestCase):
    def test_bound_handlers_compare_like_bound_methods(self) -> None:
        bot = Basic()
        self.assertEqual(bot.ping, bot.ping)
        self.assertEqual(hash(bot.ping), hash(bot.ping))
        self.assertNotEqual(bot.ping, Basic().ping)
        self.assertNotEqual(bot.ping, bot.notices)
        # mautrix keeps handlers in a dict: a fresh lookup must find and remove the same entry.
        handlers = {bot.ping: 1}
        handlers.pop(bot.ping)
        self.assertEqual(handlers, {})

    def test_class_access_gives_the_handler(self) -> None:
        self.assertIsInstance(Basic.ping, command.CommandHandler)
        self.assertEqual(Basic.ping.__mb_func__.__name__, "ping")
        # A passive command is a plain coroutine function, as in maubot: a bound method on reading.
        self.assertTrue(inspect.iscoroutinefunction(Passive.hello))
        bot = Passive()
        self.assertIs(bot.hello.__self__, bot)

    def test_bound_handler_interface(self) -> None:
        bot = Basic()
        self.assertIs(bot.ping.__mb_event_handler__, True)
        self.assertEqual(bot.ping.__mb_event_types__, {EventType.ROOM_MESSAGE})

    def test_instances_are_kept_apart(self) -> None:
        first, second = Names(), Names()
        second.prefix = "two"
        say(first, "!two")
        say(second, "!two")
        self.assertEqual(first.calls, [])
        self.assertEqual(second.calls, [("cfg", {})])

    def test_direct_call(self) -> None:
        bot = Basic()
        evt = message("!ping")
        run(bot.ping(evt))
        self.assertEqual(bot.calls, [("ping", {})])

    def test_event_type_option(self) -> None:
        class Custom(Recorder):
            @command.new("custom", event_type=EventType.find("xyz.example.custom"))
            async def custom(self, evt) -> None:
                self.record("custom")

        custom = EventType.find("xyz.example.custom")
        self.assertEqual(Custom().custom.__mb_event_types__, {custom})


if __name__ == "__main__":
    unittest.main()
