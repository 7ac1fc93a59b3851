"""The bus interface: publish an event on a topic; subscribe to topics."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

# Told to a subscriber that lost events because it read too slowly: reload everything.
RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``data`` is JSON-able, so events can cross processes."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """A subscriber's bounded queue of events.

    When the queue is full the subscriber has fallen behind: its queued events are
    dropped and the next thing it reads is a ``resync`` event. The publisher never waits.
    """

    def __init__(self, bus: Bus, topics: frozenset[str], maxsize: int) -> None:
        self.topics = topics
        self.dropped = 0
        self._bus = bus
        self._maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._lost = False
        self.closed = False

    def put(self, event: Event) -> None:
        """Queue ``event`` without ever blocking (called by the bus)."""
        if len(self._queue) >= self._maxsize:
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self._lost = True
        else:
            self._queue.append(event)
        self._ready.set()

    def pending(self) -> int:
        return len(self._queue)

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None when ``timeout`` seconds pass with none."""
        while not self._queue and not self._lost:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        if self._lost:
            self._lost = False
            self._queue.clear()
            return Event(RESYNC)
        return self._queue.popleft()

    def drain(self) -> list[Event]:
        """Every event queued right now, without waiting."""
        if self._lost:
            self._lost = False
            self._queue.clear()
            return [Event(RESYNC)]
        events = list(self._queue)
        self._queue.clear()
        return events

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self.closed:
            event = await self.get()
            if event is not None:
                yield event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Bus(ABC):
    """Publish/subscribe of events by topic.

    Implementations decide how far an event travels: :class:`InProcessBus` reaches the
    subscribers of this process; a shared broker would also reach other replicas by
    calling :meth:`deliver` for what it receives.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    @abstractmethod
    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber of ``topic``. Never blocks, never raises."""

    def wants(self, topic: str) -> bool:
        """False when no one could receive an event on ``topic``, so a publisher may
        skip even building it. Must be cheap: the heartbeat path asks on every beat."""
        return bool(self._subscribers.get(topic))

    def subscribe(self, topics: Iterable[str], *, maxsize: int = 512) -> Subscription:
        subscription = Subscription(self, frozenset(topics), maxsize)
        for topic in subscription.topics:
            self._subscribers.setdefault(topic, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        for topic in subscription.topics:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[topic]

    def subscriber_count(self) -> int:
        return len({s for subs in self._subscribers.values() for s in subs})

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to this process's subscribers of its topic."""
        for subscription in tuple(self._subscribers.get(event.topic, ())):
            subscription.put(event)

    async def close(self) -> None:
        """Release connections; subscribers of this process are closed."""
        for subscription in {s for subs in self._subscribers.values() for s in subs}:
            subscription.close()
