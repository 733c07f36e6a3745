"""The driver core shared by the asyncio and trio workers.

:mod:`~hypercorn.driver.connection` runs one connection on any event loop,
:mod:`~hypercorn.driver.worker` holds what a worker's connections share,
:mod:`~hypercorn.driver.lifespan` runs ASGI lifespan, and
:mod:`~hypercorn.driver.backend` is the small interface each event loop implements.
Nothing here imports an event loop.
"""
