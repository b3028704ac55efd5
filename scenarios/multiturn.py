"""Multi-turn conversations as Locust users.

    locust -f scenarios/multiturn.py --headless -u 50 -r 10 -t 60s          # embedded reference server
    locust -f scenarios/multiturn.py --host http://127.0.0.1:8000            # a running OpenAI-compatible service
    locust -f scenarios/multiturn.py --transport grpc                        # same dialogues over gRPC

chat-loadgen's options (``--transport``, ``--dialogues``, ``--history``, ``--threshold``, ...) are listed with their
environment variables in README.md ("Options") and declared in loadgen/locust_plugin/options.py. Locust's own
``--help`` does not show them: it prints before this file is loaded.
"""

from loadgen.locust_plugin import ConversationUser


class MultiTurnChatUser(ConversationUser):
    """One user = one conversation at a time, replayed turn by turn with think time in between."""
