"""The wire contracts, written once and read by both sides: client transports and server fronts.

Each module is one protocol's format, with no I/O (nothing here opens a socket, starts a loop or logs a
request); :mod:`loadgen.transports` and the fronts of :mod:`loadgen.server` are thin adapters over it:

- :mod:`~loadgen.wire.sse`: the event stream (line splitting, event framing both ways);
- :mod:`~loadgen.wire.openai`: chat-completions request bodies, chunks, whole completions and error bodies, each
  with its encoder (the REST front) and its decoder (the REST transport), the per-token shortcuts of both sides
  (pre-encoded byte pieces, the learned :class:`~loadgen.wire.openai.ContentChunkShape`) tied by a round trip;
- :mod:`~loadgen.wire.grpc`: ``loadgen.chat.v1.ChatService`` names from the generated descriptor, and
  :class:`~loadgen.types.ChatRequest`, chunks and usage to and from its messages;
- :mod:`~loadgen.wire.amqp`: the AMQP request/reply messages, headers, queue names and URL helpers;
  :mod:`~loadgen.wire.amqp_link`: the broker connection (failures in words, quiet library logs, its state logged
  once per change);
- :mod:`~loadgen.wire.auth`: ONE bearer format and ONE key policy for every transport and front;
- :mod:`~loadgen.wire.status`: ONE table from a server-side failure to its HTTP status, gRPC code and AMQP
  code, and from each of those back to ONE client failure kind (:mod:`loadgen.errors`);
- :mod:`~loadgen.wire.session`: how the server says it did not hold the session a request named (all three);
- :mod:`~loadgen.wire.text`: reasons cut to one short line and URLs with their password hidden.

A round-trip test per protocol (``tests/wire/``) proves that what a front's encoder writes, a transport's
decoder reads back to the same value, and that every row of the status table is the same client failure on
REST, gRPC and AMQP. Nothing here imports :mod:`loadgen.transports` or :mod:`loadgen.server`; a module is
imported only by whoever needs it (``wire.grpc`` loads grpcio and ``wire.amqp`` aiormq's exception types, so
neither is imported by a REST run).
"""
