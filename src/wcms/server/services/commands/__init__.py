"""Durable commands: one service over four parts, one per concept.

A command fans out into one run per target machine. Runs live in the database, so a
server restart loses nothing, and the agent's journal makes sure it starts each
(run, attempt) at most once. A run travels like this:

1. **Born in its state** (:mod:`.lifecycle`): the command and all its runs are written
   in one transaction. A run for an agent connected here is born ``delivered`` (to be
   acknowledged within ``delivery_timeout``): one write for the whole fleet instead of
   a second round after sending. A run an action policy refuses is born ``failed``;
   the rest are ``queued``.
2. **Pushed after the commit** (:mod:`.delivery`): each live agent is offered its run.
   A long-polling agent is only woken, and fetches its runs itself (``poll`` marks them
   delivered).
3. **Undelivered on a failed push**: a run born delivered whose push did not go out goes
   back to ``queued`` with the same attempt, so its agent gets it on its next
   connection. Every (re)connection offers the machine all its queued and delivered
   runs, best priority first.
4. **Reported** (:mod:`.reports`): the agent's ``running`` report is its
   acknowledgement, and the run's timeout counts from it; it and the final report move
   the run by conditional updates (a stale attempt or a finished run never moves);
   output is capped and secrets masked; a failed run with retries left is requeued as
   a new attempt and pushed again, unless the agent was interrupted while it ran and
   the command is not idempotent. Live output arrives separately (:mod:`.progress`).
5. **Swept** (:mod:`.lifecycle`, called by the sweeper worker): queued runs past their
   expiry expire; delivered runs never acknowledged in time go back to ``queued`` and
   are offered again (the link died unnoticed; the agent's journal drops a duplicate);
   running runs past their deadline time out.

:class:`Commands` is what handlers and channels use; :mod:`.views` shapes the reads.
"""

from wcms.server.services.commands.service import Commands

__all__ = ["Commands"]
