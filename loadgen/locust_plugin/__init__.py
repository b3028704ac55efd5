"""Locust integration: options, the ConversationUser, metrics shipping and the end-of-run report.

Importing this package registers its event listeners; a locustfile only needs::

    from loadgen.locust_plugin import ConversationUser

    class Chat(ConversationUser):
        pass
"""

from loadgen.locust_plugin import events as _events  # noqa: F401 - registers listeners
from loadgen.locust_plugin import report_hooks as _report_hooks  # noqa: F401 - reports, CI gates, web UI tab
from loadgen.locust_plugin.user import ConversationUser

__all__ = ["ConversationUser"]
