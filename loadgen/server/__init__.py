"""The reference model server: REST, gRPC and AMQP fronts over one engine, in one asyncio process.

Each front is a thin adapter over its protocol's wire contract (:mod:`loadgen.wire`) and the one chat service
(:mod:`loadgen.server.service`); :mod:`loadgen.server.fronts` states what every front does, and how it answers a
failure (the status table of :mod:`loadgen.wire.status`). Nothing here imports the client package
(:mod:`loadgen.transports`).
"""
