"""The WCMS agent: runs on each managed machine, keeps a connection to the server,
reports inventory and status, and carries out commands exactly once.

Entry points: :class:`wcms.agent.config.AgentConfig`, :func:`wcms.agent.main.run_agent`
and :class:`wcms.agent.main.Agent`.
"""
