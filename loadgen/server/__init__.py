"""The reference model server: REST, gRPC and AMQP fronts over one engine, in one asyncio process."""
