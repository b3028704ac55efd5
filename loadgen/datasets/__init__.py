"""Conversation datasets: JSONL files of recorded chats, replayed user turn by user turn.

Each line of a file is one conversation, in the OpenAI form ``{"messages": [{"role": ..., "content": ...}]}``
or the ShareGPT form ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}`` (the rules, role
aliases and normalisation are in :mod:`loadgen.datasets.parse`); a file may be gzip-compressed. Files are
streamed: memory never holds more than one line of text, whatever the file's size.

The contract for a load generator (one feed per process, shared by all its users)::

    from loadgen.datasets import DatasetError, Shard, open_dataset

    feed = open_dataset(paths, min_user_turns=5, skip_bad=False, order="sequential", seed=0,
                        shard=Shard(index=0, count=1))   # before any load starts: DatasetError is one line
    conversation = feed.next()      # from any greenlet or thread, whenever a user starts a conversation
    conversation.system             # str | None
    conversation.turns              # tuple[DatasetTurn(user, recorded_reply)], in order, >= min_user_turns
    conversation.recorded_messages(i)   # the OpenAI messages for turn i under `--dataset-history recorded`
    feed.close()                    # at the end (only a compressed dataset holds a file open)

* :func:`open_dataset` reads every file once, start to end, before returning: a malformed line is a
  :class:`DatasetError` ``FILE:LINE: problem`` (a :class:`~loadgen.errors.ConfigError`) then, not mid-run; with
  ``skip_bad=True`` it is skipped and counted. Conversations with fewer than ``min_user_turns`` user turns are
  skipped and counted (:attr:`ConversationFeed.counts`, one :class:`FileCounts` per file). No usable
  conversation in this shard is a :class:`DatasetError` too. The caller adds its option names to the message
  (e.g. which option skips bad lines).
* Picking conversations cheaply: for uncompressed files the first read keeps an index (offset, length and line
  of each usable conversation: 16 bytes each, never the text), and :meth:`ConversationFeed.get` reads the
  ``n``-th conversation with one seek and one read. For a gzip file, which cannot be read from the middle, the
  feed reads the files again in a sequential cycle instead (``order="shuffled"`` and ``get`` then raise a
  :class:`DatasetError`; :attr:`ConversationFeed.random_access` says which). Either way, ``next()`` is the call
  to use; it costs a parse of one line.
* Thread and greenlet safety: ``next()`` and ``get()`` may be called from any number of greenlets or threads;
  the cursor moves under a lock, and nothing done under it yields to the gevent hub (file reads are blocking
  calls). A conversation is frozen; a user keeps its own position in it.
* End of the files: ``next()`` wraps around to the first conversation (the same order again, shuffled ones
  too); it never runs dry. :attr:`ConversationFeed.handed_out` counts conversations handed out, so
  ``handed_out // len(feed)`` is how many times the dataset was replayed whole.
* Several processes: ``Shard(index, count)`` gives process ``index`` of ``count`` the conversations whose number
  ``n`` (0-based, over the usable conversations of all files, in order) has ``n % count == index``.
* A file that changes while a run reads it is a :class:`DatasetError` from ``next()``/``get()``: the only time
  they raise.

``loadgen dataset check FILE...`` (:mod:`loadgen.datasets.cli`) prints the counts and the turn and token-length
distributions without starting any load.
"""

from __future__ import annotations

from loadgen.datasets.feed import ORDERS, ConversationFeed, Shard, open_dataset, split_over
from loadgen.datasets.model import DEFAULT_MIN_USER_TURNS, DatasetConversation, DatasetError, DatasetTurn
from loadgen.datasets.parse import ROLE_ALIASES
from loadgen.datasets.reader import FileCounts, iter_entries
from loadgen.datasets.tokens import CharEstimate, TokenCounter, TokenizerFile, token_counter

__all__ = [
    "DEFAULT_MIN_USER_TURNS",
    "ORDERS",
    "ROLE_ALIASES",
    "CharEstimate",
    "ConversationFeed",
    "DatasetConversation",
    "DatasetError",
    "DatasetTurn",
    "FileCounts",
    "Shard",
    "TokenCounter",
    "TokenizerFile",
    "iter_entries",
    "open_dataset",
    "split_over",
    "token_counter",
]
