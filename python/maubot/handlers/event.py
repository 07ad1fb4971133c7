"""Event handlers: ``@event.on(EventType.X)`` and ``@event.off``.

maubot-rs's own implementation of maubot 0.6's ``maubot.handlers.event``. The decorators only mark
the function (or a command handler: ``@event.on`` over ``@command.new`` adds a type to it, and
``@event.off`` over one keeps it from being registered while it can still be called directly);
``Plugin.register_handler_class`` adds it to the client for every type in ``__mb_event_types__``
while ``__mb_event_handler__`` is true.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar, Union

from mautrix.client import InternalEventType
from mautrix.types import EventType

__all__ = ["EventHandler", "EventHandlerDecorator", "off", "on"]

# The type names maubot's module offers for annotations.
EventHandler = Callable[..., Awaitable[Any]]
EventHandlerDecorator = Callable[[EventHandler], EventHandler]

Handler = TypeVar("Handler", bound=Callable[..., Any])
AnyEventType = Union[EventType, InternalEventType]


def _add_type(func: Handler, event_type: AnyEventType) -> Handler:
    types = getattr(func, "__mb_event_types__", None)
    if types is None:
        types = set()
        func.__mb_event_types__ = types  # type: ignore[attr-defined]
    types.add(event_type)
    func.__mb_event_handler__ = True  # type: ignore[attr-defined]
    return func


def on(var: AnyEventType | str | Handler) -> Any:
    """Handle events of a type: ``@event.on(EventType.ROOM_MEMBER)``.

    Stack it to handle several types with one method. Used bare (``@event.on``), the method
    receives every event (``EventType.ALL``). The bot's own events are not filtered out. A type's
    name (``"m.room.member"``) is accepted too, which maubot does not.
    """
    if isinstance(var, str):
        var = EventType.find(var)
    if isinstance(var, (EventType, InternalEventType)):
        event_type = var

        def decorator(func: Handler) -> Handler:
            return _add_type(func, event_type)

        return decorator
    if callable(var):
        return _add_type(var, EventType.ALL)
    raise TypeError(f"event.on expects an event type or a function, not {type(var).__name__}")


def off(func: Handler) -> Handler:
    """Keep a handler from being registered; calling it directly still works."""
    func.__mb_event_handler__ = False  # type: ignore[attr-defined]
    return func
