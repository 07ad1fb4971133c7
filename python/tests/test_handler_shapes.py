"""Handler shapes plugins use, on real `Plugin` objects: decorators stacked and mixed, handlers
called directly, inherited from base classes and mixins, or registered from other objects.

What is expected is what maubot 0.6.0 does with the same class.
"""

from __future__ import annotations

import asyncio
import logging
import unittest
from typing import Any

from mautrix.types import EventType, MessageType

from maubot import MessageEvent, Plugin, PluginWebApp
from maubot.handlers import command, event, web

from .handler_fakes import BOT, FakeClient, make_plugin, message, reaction


async def started(cls: type, webapp: Any = None) -> Any:
    bot = make_plugin(cls, webapp)
    bot.calls = []
    await bot.internal_start()
    return bot


def handler_name(handler: Any) -> str:
    """A command's name, else the method's."""
    return getattr(handler, "__mb_name__", None) or handler.__name__


def registered(bot: Plugin) -> list[tuple[Any, str]]:
    client: FakeClient = bot.client  # type: ignore[assignment]
    return sorted(
        ((event_type, handler_name(handler)) for event_type, handler in client.handlers), key=str
    )


# ------------------------------------------------------------------------------------------------
# @event.off over stacked passives, called from an @event.on handler


class OffPassives(Plugin):
    calls: list

    @event.off
    @command.passive(r"\bfoo\b")
    @command.passive(r"bar(\d+)")
    async def command_handler(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(("command_handler", match))

    @event.on(EventType.ROOM_MESSAGE)
    async def on_message(self, evt: MessageEvent) -> None:
        self.calls.append(("on_message", evt.content.body))
        await self.command_handler(evt)


class EventOffOverPassivesTest(unittest.IsolatedAsyncioTestCase):
    async def test_only_the_event_handler_is_registered(self) -> None:
        bot = await started(OffPassives)
        self.assertEqual(registered(bot), [(EventType.ROOM_MESSAGE, "on_message")])
        self.assertIs(OffPassives.command_handler.__mb_event_handler__, False)

    async def test_called_directly_it_matches_its_regexes(self) -> None:
        bot = await started(OffPassives)
        await bot.client.dispatch(message("foo bar42"))
        await bot.client.dispatch(message("nothing"))
        self.assertEqual(
            bot.calls,
            [
                ("on_message", "foo bar42"),
                # Two stacked passives run bottom first, as in maubot.
                ("command_handler", ("foo bar42", "42")),
                ("command_handler", ("foo bar42",)),
                ("on_message", "nothing"),
            ],
        )

    async def test_a_direct_call_ignores_the_bots_own_events(self) -> None:
        bot = await started(OffPassives)
        await bot.client.dispatch(message("foo", sender=BOT))
        self.assertEqual(bot.calls, [("on_message", "foo")])

    async def test_the_handler_is_a_method_of_the_plugin(self) -> None:
        bot = await started(OffPassives)
        self.assertIs(bot.command_handler.__self__, bot)
        with self.assertRaises(TypeError):
            await bot.command_handler(message("foo"), ("foo",))


# ------------------------------------------------------------------------------------------------
# Stacked passives


class ThreePassives(Plugin):
    calls: list

    @command.passive(r"x(1)")
    @command.passive(r"x(2)")
    @command.passive(r"x(3)")
    async def three(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(match[1])

    @command.passive(r"wait")
    @command.passive(r"wa(i)t")
    async def waiting(self, evt: MessageEvent, match: tuple) -> None:
        # The top rule waits for the bottom one: only rules run concurrently get past this.
        if len(match) == 1:
            await asyncio.wait_for(self.released.wait(), 1)
            self.calls.append("top")
        else:
            self.released.set()
            self.calls.append("bottom")

    @command.passive(r"boom")
    @command.passive(r"bo(o)m")
    async def boom(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(match)
        raise ValueError("boom")

    @command.passive(
        r"^(x)$",
        field=lambda e: e.content.relates_to.key,
        msgtypes=None,
        event_type=EventType.REACTION,
    )
    @command.passive(r"(x)")
    async def mixed(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(("mixed", match))

    @event.on(EventType.REACTION)
    @command.passive(r"^hi$")
    async def also_reactions(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(("also_reactions", match))


class StackedPassivesTest(unittest.IsolatedAsyncioTestCase):
    async def test_each_matching_rule_calls_once_in_maubots_order(self) -> None:
        bot = await started(ThreePassives)
        await bot.client.dispatch(message("x1 x2 x3"))
        await bot.client.dispatch(message("x2"))
        self.assertEqual(bot.calls, ["1", "3", "2", "2"])

    async def test_rules_run_concurrently(self) -> None:
        bot = await started(ThreePassives)
        bot.released = asyncio.Event()
        await bot.client.dispatch(message("wait"))
        self.assertEqual(bot.calls, ["bottom", "top"])

    async def test_an_error_in_one_rule_does_not_stop_the_other(self) -> None:
        bot = await started(ThreePassives)
        with self.assertRaises(ValueError):
            await bot.client.dispatch(message("boom"))
        await asyncio.sleep(0)
        self.assertEqual(sorted(bot.calls), [("boom",), ("boom", "o")])

    async def test_registered_for_the_top_decorators_type_only(self) -> None:
        # maubot quirk: the lower passive's m.room.message is not registered. (Where maubot then
        # fails on the reaction for the rules wanting a msgtype, those rules just do not match.)
        bot = await started(ThreePassives)
        self.assertEqual(ThreePassives.mixed.__mb_event_types__, {EventType.REACTION})
        await bot.client.dispatch(message("x"))
        await bot.client.dispatch(reaction("x"))
        self.assertEqual(bot.calls, [("mixed", ("x", "x"))])

    async def test_event_on_over_a_passive_adds_a_type(self) -> None:
        bot = await started(ThreePassives)
        self.assertEqual(
            ThreePassives.also_reactions.__mb_event_types__,
            {EventType.ROOM_MESSAGE, EventType.REACTION},
        )
        await bot.client.dispatch(message("hi"))
        self.assertEqual(bot.calls, [("also_reactions", ("hi",))])


# ------------------------------------------------------------------------------------------------
# Commands with @event.on / @event.off, called directly


class Commands(Plugin):
    calls: list

    @command.new("ping")
    async def ping(self, evt: MessageEvent) -> str:
        self.calls.append("ping")
        return "pong"

    @event.off
    @command.new("hidden")
    @command.argument("word")
    async def hidden(self, evt: MessageEvent, word: str, **extra: Any) -> None:
        self.calls.append(("hidden", word, extra))

    @event.on(EventType.ROOM_MEMBER)
    @command.new("both")
    async def both(self, evt: MessageEvent) -> None:
        self.calls.append("both")

    @command.new("calc", help="Calculate")
    async def calc(self, evt: MessageEvent) -> None:
        self.calls.append("calc")

    @calc.subcommand("add", help="Add two numbers")
    @command.argument("a", parser=int)
    @command.argument("b", parser=int)
    async def add(self, evt: MessageEvent, a: int, b: int) -> int:
        self.calls.append(("add", a, b))
        return a + b


@command.new("module-level")
async def module_level(evt: Any) -> str:
    return f"called with {evt.content.body}"


class CommandsTest(unittest.IsolatedAsyncioTestCase):
    async def test_event_off_and_event_on_over_commands(self) -> None:
        bot = await started(Commands)
        self.assertEqual(
            registered(bot),
            [
                (EventType.ROOM_MEMBER, "both"),
                (EventType.ROOM_MESSAGE, "both"),
                (EventType.ROOM_MESSAGE, "calc"),
                (EventType.ROOM_MESSAGE, "ping"),
            ],
        )
        await bot.client.dispatch(message("!hidden w"))
        self.assertEqual(bot.calls, [])

    async def test_direct_call_runs_the_whole_dispatch(self) -> None:
        bot = await started(Commands)
        self.assertEqual(await bot.ping(message("!PING")), "pong")
        self.assertIsNone(await bot.ping(message("hello")))
        self.assertIsNone(await bot.ping(message("!ping", sender=BOT)))
        self.assertIsNone(await bot.ping(message("!ping", msgtype=MessageType.NOTICE)))
        await bot.hidden(message("!hidden w"))
        self.assertEqual(bot.calls, ["ping", ("hidden", "w", {})])

    async def test_remaining_val_replaces_the_body(self) -> None:
        bot = await started(Commands)
        await bot.hidden(message("anything"), remaining_val="given")
        await bot.hidden(message("!hidden typed"), remaining_val="")
        await bot.hidden(message("x", sender=BOT), remaining_val="own")
        self.assertEqual(bot.calls, [("hidden", "given", {}), ("hidden", "", {})])

    async def test_existing_args_reach_the_method(self) -> None:
        bot = await started(Commands)
        await bot.hidden(message("x"), remaining_val="new", _existing_args={"word": "old", "k": 1})
        self.assertEqual(bot.calls, [("hidden", "new", {"k": 1})])

    async def test_subcommand_called_directly(self) -> None:
        bot = await started(Commands)
        self.assertEqual(await bot.add(message("x"), remaining_val="1 2"), 3)
        # Without remaining_val a subcommand reads the body as a command of its own name.
        self.assertEqual(await bot.add(message("!add 3 4")), 7)
        self.assertIsNone(await bot.add(message("!calc add 5 6")))
        self.assertEqual(await bot.calc(message("!calc add 5 6")), 11)
        self.assertEqual(bot.calls, [("add", 1, 2), ("add", 3, 4), ("add", 5, 6)])

    async def test_a_command_not_read_from_an_object(self) -> None:
        self.assertEqual(await module_level(message("!module-level")), "called with !module-level")

    async def test_bound_commands_compare_like_methods(self) -> None:
        bot = await started(Commands)
        self.assertEqual(bot.ping, bot.ping)
        self.assertEqual(hash(bot.ping), hash(bot.ping))
        self.assertNotEqual(bot.ping, make_plugin(Commands).ping)


# ------------------------------------------------------------------------------------------------
# Inheritance, mixins, handler classes and web routes


class Mixin:
    calls: list

    @command.new("mix")
    async def mix(self, evt: MessageEvent) -> None:
        self.calls.append(("mix", type(self).__name__))

    @event.on(EventType.ROOM_MEMBER)
    async def member(self, evt: Any) -> None:
        self.calls.append(("member", type(self).__name__))

    @web.get("/mixin")
    async def mixin_route(self, request: Any) -> Any:
        return ("mixin_route", self)


class Base(Plugin):
    calls: list

    @command.passive("base")
    async def base_passive(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(("base_passive", match))

    @command.new("over")
    async def over(self, evt: MessageEvent) -> None:
        self.calls.append("over from Base")

    @command.new("gone")
    async def gone(self, evt: MessageEvent) -> None:
        self.calls.append("gone from Base")


class Helper:
    """Commands kept on another object, registered with ``register_handler_class``."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot
        self.prefix = "help"

    @command.new(name=lambda self: self.prefix + "er")
    @command.argument("x", required=False)
    async def helper(self, evt: MessageEvent, x: str) -> None:
        self.bot.calls.append(("helper", type(self).__name__, x))

    @command.passive("hlp")
    async def helper_passive(self, evt: MessageEvent, match: tuple) -> None:
        self.bot.calls.append(("helper_passive", type(self).__name__))

    @web.post("/helper")
    async def helper_route(self, request: Any) -> Any:
        return ("helper_route", self)


class Inherited(Mixin, Base):
    @command.new("over")
    async def over(self, evt: MessageEvent) -> None:
        self.calls.append("over from Inherited")

    async def gone(self, evt: MessageEvent) -> None:  # type: ignore[override]
        self.calls.append("gone, now a plain method")

    @web.get("/own")
    @web.put("/own/{x}")
    async def own_route(self, request: Any) -> Any:
        return ("own_route", self)

    async def start(self) -> None:
        self.helper = Helper(self)
        self.register_handler_class(self.helper)


class InheritanceTest(unittest.IsolatedAsyncioTestCase):
    async def test_handlers_of_bases_mixins_and_handler_classes(self) -> None:
        bot = await started(Inherited, PluginWebApp())
        self.assertEqual(
            registered(bot),
            [
                (EventType.ROOM_MEMBER, "member"),
                (EventType.ROOM_MESSAGE, "base_passive"),
                (EventType.ROOM_MESSAGE, "helper"),
                (EventType.ROOM_MESSAGE, "helper_passive"),
                (EventType.ROOM_MESSAGE, "mix"),
                (EventType.ROOM_MESSAGE, "over"),
            ],
        )
        for body in ("!mix", "base", "!over", "!gone", "!helper 1", "hlp"):
            await bot.client.dispatch(message(body))
        await bot.client.dispatch(message("x", sender=BOT))
        for handler in bot.client.handlers_for(EventType.ROOM_MEMBER):
            await handler(message("joined"))
        self.assertEqual(
            bot.calls,
            [
                ("mix", "Inherited"),
                ("base_passive", ("base",)),
                "over from Inherited",
                ("helper", "Helper", "1"),
                ("helper_passive", "Helper"),
                ("member", "Inherited"),
            ],
        )

    async def test_web_routes_of_the_plugin_its_mixins_and_handler_classes(self) -> None:
        webapp = PluginWebApp()
        bot = await started(Inherited, webapp)
        routes = [(route.method, route.resource.canonical) for route in webapp.routes()]
        self.assertEqual(
            routes,
            [("GET", "/mixin"), ("PUT", "/own/{x}"), ("GET", "/own"), ("POST", "/helper")],
        )
        owners = [(await route.handler(None))[1] for route in webapp.routes()]
        self.assertEqual(owners, [bot, bot, bot, bot.helper])

        await bot.internal_stop()
        self.assertEqual(list(webapp.routes()), [])
        self.assertEqual(bot.client.handlers, [])

    async def test_web_routes_without_a_webapp_are_skipped_with_a_warning(self) -> None:
        with self.assertLogs("maubot.instance.bot1", logging.WARNING) as logs:
            bot = await started(Inherited)
        self.assertEqual(len(logs.records), 2)  # once for the plugin, once for the helper
        self.assertEqual(len(bot.client.handlers), 6)


# ------------------------------------------------------------------------------------------------
# Everything at once, as public plugins combine them


class HelpMixin:
    """A help command built from maubot's ``__mb_*__`` attributes, as some plugins do."""

    client: Any

    @command.new("help", help="List the commands")
    async def help_command(self, evt: MessageEvent) -> None:
        lines = [
            handler.__mb_usage_inline__
            for handler in self.client.handlers_for(EventType.ROOM_MESSAGE)
            if hasattr(handler, "__mb_name__")
        ]
        await evt.reply("\n".join(sorted(lines)))


class KarmaBase(Plugin):
    calls: list

    @command.passive(r"(\w+)\+\+")
    @command.passive(r"(\w+)--", multiple=True)
    async def karma(self, evt: MessageEvent, match: Any) -> None:
        self.calls.append(("karma", match))


class Combined(HelpMixin, KarmaBase):
    @command.new(
        name=lambda self: self.config["prefix"],
        aliases=lambda self, alias: alias in (self.config["prefix"], "r"),
        help="Set a reminder",
        require_subcommand=False,
        arg_fallthrough=False,
    )
    @command.argument("when")
    @command.argument("message", pass_raw=True, required=False)
    async def remind(self, evt: MessageEvent, when: str, message: str) -> None:
        self.calls.append(("remind", when, message))

    @remind.subcommand("list", aliases=("ls",), help="List reminders")
    async def list_reminders(self, evt: MessageEvent) -> None:
        self.calls.append("list")

    @remind.subcommand("cancel", help="Cancel a reminder")
    @command.argument("id", "reminder ID", parser=int)
    async def cancel(self, evt: MessageEvent, id: int) -> None:
        self.calls.append(("cancel", id))

    @event.off
    @command.passive(r"^!p(?:ing)?$")
    @command.passive(r"^ping\?$")
    async def ping_handler(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append(("ping", match[0]))

    @event.on(EventType.ROOM_MESSAGE)
    async def on_message(self, evt: MessageEvent) -> None:
        if self.config["ping"]:
            await self.ping_handler(evt)

    @command.passive(
        "^👍$",
        field=lambda evt: evt.content.relates_to.key,
        event_type=EventType.REACTION,
        msgtypes=None,
    )
    async def thumbs(self, evt: MessageEvent, match: tuple) -> None:
        self.calls.append("thumbs")

    @web.get("/reminders")
    async def reminders(self, request: Any) -> Any:
        return self.calls

    async def start(self) -> None:
        self.config = {"prefix": "remind", "ping": True}


class CombinedPluginTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.webapp = PluginWebApp()
        self.bot = await started(Combined, self.webapp)

    async def say(self, body: str) -> list[str]:
        evt = message(body)
        await self.bot.client.dispatch(evt)
        return evt.replies

    async def test_commands_and_passives(self) -> None:
        for body in (
            "!remind tomorrow buy milk",
            "!r ls",
            "!remind cancel 4",
            "!p",
            "ping?",
            "foo++ a-- b--",
        ):
            self.assertEqual(await self.say(body), [])
        await self.bot.client.dispatch(reaction("👍"))
        self.assertEqual(
            self.bot.calls,
            [
                ("remind", "tomorrow", "buy milk"),
                "list",
                ("cancel", 4),
                ("ping", "!p"),
                ("ping", "ping?"),
                ("karma", [("foo++ a-- b--", "a"), ("foo++ a-- b--", "b")]),
                ("karma", ("foo++ a-- b--", "foo")),
                "thumbs",
            ],
        )

    async def test_names_follow_the_config(self) -> None:
        self.bot.config["prefix"] = "rem"
        await self.say("!remind x")
        await self.say("!rem x")
        self.bot.config["ping"] = False
        await self.say("!p")
        self.assertEqual(self.bot.calls, [("remind", "x", "")])

    async def test_help_texts(self) -> None:
        self.assertEqual(
            await self.say("!remind cancel soon"),
            ["**Usage:** !remind cancel <reminder ID>"],
        )
        self.assertEqual(
            await self.say("!help"),
            [
                "* help  - List the commands\n"
                "* remind <when> [message] - Set a reminder\n"
                "* remind <subcommand> [...]"
            ],
        )
        self.assertEqual(self.bot.remind.__mb_name__, "remind")
        self.assertEqual(self.bot.remind.__mb_prefix__, "!remind")
        self.assertEqual(
            [sub.__mb_prefix__ for sub in self.bot.remind.__mb_subcommands__],
            ["!remind list", "!remind cancel"],
        )
        self.assertEqual(
            self.bot.remind.__mb_full_help__,
            "**Usage:** !remind <when> [message] _OR_ !remind <subcommand> [...]\n\n"
            "* !remind <when> [message] - Set a reminder\n"
            "* list  - List reminders\n"
            "* cancel <reminder ID> - Cancel a reminder",
        )

    async def test_registered_handlers_and_route(self) -> None:
        self.assertEqual(
            registered(self.bot),
            [
                (EventType.REACTION, "thumbs"),
                (EventType.ROOM_MESSAGE, "help"),
                (EventType.ROOM_MESSAGE, "karma"),
                (EventType.ROOM_MESSAGE, "on_message"),
                (EventType.ROOM_MESSAGE, "remind"),
            ],
        )
        [route] = self.webapp.routes()
        self.assertIs(await route.handler(None), self.bot.calls)


if __name__ == "__main__":
    unittest.main()
