"""What the agent reports about its machine: inventory at connect, status per heartbeat."""

from wcms.agent.collectors.inventory import collect_inventory
from wcms.agent.collectors.status import StatusCollector

__all__ = ["StatusCollector", "collect_inventory"]
