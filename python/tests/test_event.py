"""maubot.handlers.event and maubot.handlers.web: what the decorators leave on a method."""

from __future__ import annotations

import unittest

from mautrix.client import InternalEventType
from mautrix.types import EventType

from maubot.handlers import event, web

from .handler_fakes import BOT, Registry, message, run


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @event.on(EventType.ROOM_MEMBER)
    @event.on(EventType.ROOM_TOMBSTONE)
    async def state(self, evt) -> None:
        self.seen.append(("state", evt.event_id))

    @event.on
    async def everything(self, evt) -> None:
        self.seen.append(("everything", evt.event_id))

    @event.on(InternalEventType.JOIN)
    async def joined(self, evt) -> None:
        self.seen.append(("joined", evt.event_id))

    @event.on(EventType.ROOM_MESSAGE)
    async def messages(self, evt) -> None:
        self.seen.append(("messages", evt.sender))

    @event.off
    @event.on(EventType.ROOM_MESSAGE)
    async def disabled(self, evt) -> None:
        self.seen.append(("disabled", evt.event_id))

    @event.on("m.room.redaction")
    async def by_name(self, evt) -> None:
        self.seen.append(("by_name", evt.event_id))

    async def plain(self, evt) -> None:
        self.seen.append(("plain", evt.event_id))


class EventHandlerTest(unittest.TestCase):
    def test_stacked_types(self) -> None:
        self.assertIs(Events.state.__mb_event_handler__, True)
        self.assertEqual(
            Events.state.__mb_event_types__, {EventType.ROOM_MEMBER, EventType.ROOM_TOMBSTONE}
        )

    def test_bare_on_means_all_events(self) -> None:
        self.assertEqual(Events.everything.__mb_event_types__, {EventType.ALL})

    def test_internal_event_type(self) -> None:
        self.assertEqual(Events.joined.__mb_event_types__, {InternalEventType.JOIN})

    def test_event_type_by_name(self) -> None:
        self.assertEqual(Events.by_name.__mb_event_types__, {EventType.ROOM_REDACTION})

    def test_off(self) -> None:
        self.assertIs(Events.disabled.__mb_event_handler__, False)

    def test_registration_through_bound_methods(self) -> None:
        bot = Events()
        registry = Registry()
        registry.register(bot)
        self.assertEqual(
            registry.handlers,
            {
                EventType.ROOM_MEMBER: [bot.state],
                EventType.ROOM_TOMBSTONE: [bot.state],
                EventType.ALL: [bot.everything],
                InternalEventType.JOIN: [bot.joined],
                EventType.ROOM_MESSAGE: [bot.messages],
                EventType.ROOM_REDACTION: [bot.by_name],
            },
        )

    def test_own_events_are_not_filtered(self) -> None:
        bot = Events()
        registry = Registry()
        registry.register(bot)
        evt = message("hi", sender=BOT)
        run(registry.dispatch(evt))
        self.assertEqual(bot.seen, [("messages", BOT), ("everything", evt.event_id)])

    def test_on_rejects_other_values(self) -> None:
        with self.assertRaises(TypeError):
            event.on(42)


class Web:
    @web.get("/status")
    async def status(self, request) -> None: ...

    @web.post("/items", name="create")
    @web.put("/items/{id}")
    async def items(self, request) -> None: ...

    @web.handle("PROPFIND", "/dav")
    async def dav(self, request) -> None: ...

    @web.view("/view")
    class View: ...


class WebHandlerTest(unittest.TestCase):
    def test_routes(self) -> None:
        self.assertEqual(Web.status.__mb_web_handler__, [("GET", "/status", {})])
        # Bottom-up, as in maubot: the lowest decorator's route is added first.
        self.assertEqual(
            Web.items.__mb_web_handler__,
            [("PUT", "/items/{id}", {}), ("POST", "/items", {"name": "create"})],
        )
        self.assertEqual(Web.dav.__mb_web_handler__, [("PROPFIND", "/dav", {})])
        self.assertEqual(Web.View.__mb_web_handler__, [("*", "/view", {})])

    def test_every_method(self) -> None:
        for method in ("get", "post", "put", "patch", "delete", "head", "options"):

            @getattr(web, method)("/x")
            async def handler(request) -> None: ...

            self.assertEqual(handler.__mb_web_handler__, [(method.upper(), "/x", {})])

    def test_bound_method_exposes_routes(self) -> None:
        self.assertEqual(Web().status.__mb_web_handler__, [("GET", "/status", {})])


if __name__ == "__main__":
    unittest.main()
