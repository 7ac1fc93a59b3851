"""Fan-out of live events (presence, status, commands, machine edits) to whoever watches.

Publishers are the services where state changes; subscribers are the dashboard's and the
API's event streams. Publishing never blocks and never fails: a subscriber that cannot
keep up loses events and is told so (it then reloads what it shows), so a slow browser
can never slow an agent down.
"""

from wcms.server.bus.base import Bus, Event, Subscription
from wcms.server.bus.feed import StatusFeed
from wcms.server.bus.memory import InProcessBus

__all__ = ["Bus", "Event", "InProcessBus", "StatusFeed", "Subscription"]
