"""The process supervisor behind :func:`hypercorn.run.run` (the ``hypercorn-runner``
distribution).

- :mod:`~hypercorn.supervisor.pool`: the supervisor loop and its pool of worker processes;
- :mod:`~hypercorn.supervisor.child`: what runs inside a worker process, and how it reports;
- :mod:`~hypercorn.supervisor.signals`: signal handlers that only record, for the loop;
- :mod:`~hypercorn.supervisor.reload`: watching the source files for the reloader.

It knows processes and signals, not connections: the workers (``hypercorn.asyncio.run``,
``hypercorn.trio.run``) are imported by name inside the worker processes only.
"""

from hypercorn.supervisor.pool import Supervisor
from hypercorn.supervisor.reload import make_reloader

__all__ = ("Supervisor", "make_reloader")
