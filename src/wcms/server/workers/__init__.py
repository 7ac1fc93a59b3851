"""Background work of a server process: each worker has ``start()`` and ``stop()``,
and the core starts and stops them by reference."""
