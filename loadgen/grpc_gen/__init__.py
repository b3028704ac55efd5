"""Generated gRPC/protobuf code for ``proto/`` (committed; do not edit by hand).

Regenerate with ``python -m loadgen.grpc_gen.regenerate``; ``--check`` proves the committed code current.
The chat contract is :mod:`loadgen.grpc_gen.chat.v1.chat_pb2` (messages) and
:mod:`loadgen.grpc_gen.chat.v1.chat_pb2_grpc` (stub and servicer), package ``loadgen.chat.v1``.
"""
