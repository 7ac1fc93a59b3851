"""Programs: long-running processes (game servers) that agents supervise.

The server holds each program's definition and desired state; the agent holds the
processes. Between them travels a machine's whole set, numbered by a revision:

1. **Defined** (:mod:`.service`): an administrator creates a program, its preset
   (:mod:`.presets`) filling what was not said; secrets are sealed apart from the spec
   (:mod:`.definitions`). Every change (definition, start, stop, restart, removal)
   raises the machine's revision in its own transaction, with the audit entry.
2. **Pushed after the commit** (:mod:`.push`): the agent's WebSocket gets the whole
   set; a long-polling agent is woken and its poll answers it. Whatever is lost on the
   way is made good by the agent's next hello or poll, which names its revision.
3. **Reported** (:mod:`.reports`): the agent's statuses and numbered state changes,
   stored in batches, each change once; the ack names the highest seq stored and
   carries the set when the agent's revision is stale.
4. **Told** (:mod:`.events`): the bus hears ``program`` for the dashboard and a
   typed ``program_event`` (crashed, hung, looping, recovered, stopped) for alerts.
"""

from wcms.server.services.programs.service import Programs
from wcms.server.services.programs.waits import Goal

__all__ = ["Goal", "Programs"]
