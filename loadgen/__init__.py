"""chat-loadgen: conversational load testing for multi-turn chat APIs."""

__version__ = "0.1.0"
