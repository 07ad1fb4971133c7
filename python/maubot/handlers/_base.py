"""The event checks handlers share, and the binding of a command to the object it is read from.

A ``@command.new`` method becomes a descriptor. Reading it from an object gives a bound handler:
an async callable taking the event, carrying ``__mb_event_handler__`` and ``__mb_event_types__``
for ``Plugin.register_handler_class``. One handler object serves every instance of the class; the
instance travels in the bound handler, never in the shared object.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable


def enum_key(value: Any) -> Any:
    """Compare ``MessageType.TEXT`` and ``"m.text"`` alike (mautrix enums are not ``str``)."""
    return getattr(value, "value", value)


def msgtype_allowed(evt: Any, msgtypes: Iterable[Any] | None) -> bool:
    if msgtypes is None:
        return True
    msgtype = enum_key(getattr(evt.content, "msgtype", None))
    return msgtype is not None and any(enum_key(allowed) == msgtype for allowed in msgtypes)


def is_own_event(evt: Any, instance: Any) -> bool:
    """Whether the bot itself sent ``evt`` (``evt.sender`` against the client's ``mxid``)."""
    client = getattr(evt, "client", None) or getattr(instance, "client", None)
    mxid = getattr(client, "mxid", None)
    return mxid is not None and getattr(evt, "sender", None) == mxid


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class HandlerDescriptor:
    """A decorated method. ``__mb_event_handler__`` and ``__mb_event_types__`` are plain
    attributes, so that ``@event.off`` and ``@event.on`` can change them after the fact."""

    func: Callable
    __mb_event_handler__: bool
    __mb_event_types__: set

    def _copy_identity(self, func: Callable) -> None:
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:
                setattr(self, attribute, getattr(func, attribute))
            except AttributeError:
                pass
        self.__wrapped__ = func

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self._bind(instance)

    def _bind(self, instance: Any) -> BoundHandler:
        return BoundHandler(self, instance)

    async def _handle(self, instance: Any, evt: Any) -> Any:
        raise NotImplementedError

    def _ignores(self, instance: Any, evt: Any) -> bool:
        return False


class BoundHandler:
    """A handler read from an object: ``await bound(evt)`` runs it for that object.

    Two bound handlers are equal when they bind the same handler to the same object, like bound
    methods, so a handler registered with mautrix can be removed with a fresh lookup. Attributes
    it does not have itself are read from the handler.
    """

    __slots__ = ("_handler", "_instance")

    def __init__(self, handler: HandlerDescriptor, instance: Any) -> None:
        self._handler = handler
        self._instance = instance

    @property
    def __mb_event_handler__(self) -> bool:
        return self._handler.__mb_event_handler__

    @property
    def __mb_event_types__(self) -> set:
        return self._handler.__mb_event_types__

    async def __call__(self, evt: Any, **kwargs: Any) -> Any:
        return await self._handler._handle(self._instance, evt, **kwargs)

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
