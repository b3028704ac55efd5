"""A plain TCP proxy in front of the RabbitMQ broker that a test can cut and restore: an outage of the broker as a
client (or the server's AMQP front) sees it, without stopping the broker that other tests share."""

from __future__ import annotations

import contextlib
import socket
import threading


class CutProxy:
    """Forwards a loopback port to the broker; :meth:`cut` drops every connection and refuses new ones (the port
    stays reserved), :meth:`restore` accepts again on the same port."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _wrap(self, raw: socket.socket) -> socket.socket:
        """The client's side of a new connection as the proxy speaks it (plain here; TLS in a subclass)."""
        return raw

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self._wrap(raw)
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:  # a failed TLS handshake (ssl.SSLError is an OSError), or no broker
            raw.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._socks += [client, upstream]
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
