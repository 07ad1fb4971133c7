"""Passive commands: ``@command.passive(regex)``, a method called when its regex matches.

As in maubot, the decorator returns a plain ``async def (self, evt)`` function, so that read from
an object it is an ordinary bound method: ``await self.handler(evt)`` runs the matching itself.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, Callable, Iterable, Pattern, Sequence

from mautrix.types import EventType, MessageType

from ._base import is_own_event, maybe_await, msgtype_allowed

PassiveHandler = Callable[[Any, Any], Any]


def _body(evt: Any) -> str:
    return evt.content.body


class PassiveRule:
    """One ``@command.passive`` decorator's regex and options."""

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

    def may_match(self, evt: Any) -> bool:
        """Whether ``run`` could call the method for ``evt`` (``True`` when the field fails)."""
        try:
            if not msgtype_allowed(evt, self.msgtypes):
                return False
            data = self.field(evt)
        except Exception:
            return True
        return isinstance(data, str) and self.regex.search(data) is not None

    async def run(self, func: Callable, instance: Any, evt: Any) -> None:
        if not msgtype_allowed(evt, self.msgtypes):
            return
        data = self.field(evt)
        if not isinstance(data, str):
            return
        if self.multiple:
            # maubot quirk: each tuple starts with the whole searched text, not the match.
            found = [(data[m.pos : m.endpos], *m.groups()) for m in self.regex.finditer(data)]
            if found:
                await maybe_await(func(instance, evt, found))
        else:
            m = self.regex.search(data)
            if m is not None:
                await maybe_await(func(instance, evt, (data[m.pos : m.endpos], *m.groups())))

    async def run_next_turn(self, func: Callable, instance: Any, evt: Any) -> None:
        await asyncio.sleep(0)
        await self.run(func, instance, evt)


async def _run_rules(rules: Sequence[PassiveRule], func: Callable, instance: Any, evt: Any) -> None:
    """Run stacked rules (top first in ``rules``) concurrently, in the order maubot runs them.

    maubot 0.6.0 was seen to run two stacked passives bottom then top, and three top, bottom,
    middle; it matters for which reply is sent first. One gather per rule, the rules below it in
    the other branch and its own method started a loop turn later, gives that order.
    """
    first, rest = rules[0], rules[1:]
    if not rest:
        await first.run(func, instance, evt)
        return
    await asyncio.gather(
        first.run_next_turn(func, instance, evt), _run_rules(rest, func, instance, evt)
    )


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
) -> Callable[[Callable], PassiveHandler]:
    """Call the method as ``(self, evt, match)`` when ``regex`` is found in ``field(evt)``.

    ``match`` is ``(whole text, *groups)``, or with ``multiple`` a list of such tuples, one per
    match. ``msgtypes=None`` accepts events without a msgtype (e.g. reactions). The bot's own
    events are ignored. The flag options apply to a regex given as a string; a compiled pattern
    is used as it is, as maubot does.

    Stacked, each decorator adds a rule and each matching rule calls the method once. As in
    maubot, the result is registered only for the top decorator's event type (plus any
    ``@event.on`` types of the method itself).
    """
    if isinstance(regex, re.Pattern):
        compiled = regex
    else:
        flags = 0
        if case_insensitive:
            flags |= re.IGNORECASE
        if multiline:
            flags |= re.MULTILINE
        if dot_all:
            flags |= re.DOTALL
        compiled = re.compile(regex, flags)
    rule = PassiveRule(compiled, field, msgtypes, event_type, multiple)

    def decorator(func: Callable) -> PassiveHandler:
        orig = getattr(func, "__mb_passive_orig__", func)
        rules = (rule, *getattr(func, "_mb_passive_rules", ()))

        @functools.wraps(orig, updated=())
        async def passive_handler(self: Any, evt: Any) -> None:
            if is_own_event(evt, self):
                return
            # Stacked rules cost a task each; most events match none of them.
            if len(rules) > 1 and not any(rule.may_match(evt) for rule in rules):
                return
            await _run_rules(rules, orig, self, evt)

        handler: Any = passive_handler
        handler.__mb_event_handler__ = True
        handler.__mb_event_types__ = set(getattr(orig, "__mb_event_types__", ())) | {event_type}
        handler.__mb_passive_orig__ = orig
        handler._mb_passive_rules = rules
        return passive_handler

    return decorator
