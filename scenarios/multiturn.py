"""Multi-turn conversations as Locust users.

    locust -f scenarios/multiturn.py --headless -u 50 -r 10 -t 60s          # embedded reference server
    locust -f scenarios/multiturn.py --host http://127.0.0.1:8000            # a running OpenAI-compatible service
    locust -f scenarios/multiturn.py --transport grpc                        # same dialogues over gRPC

All chat-loadgen options are in ``locust -f scenarios/multiturn.py --help`` under "chat-loadgen".
"""

from loadgen.locust_plugin import ConversationUser


class MultiTurnChatUser(ConversationUser):
    """One user = one conversation at a time, replayed turn by turn with think time in between."""
