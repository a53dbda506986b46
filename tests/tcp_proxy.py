"""A TCP proxy a test can cut and restore: the database "dies" without touching the server."""

from __future__ import annotations

import socket
import threading


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` drops every connection and refuses
    new ones (accepted, then closed at once) until :meth:`restore`; :meth:`hang` makes the
    database stop answering instead (nothing forwarded either way, new connections accepted and
    left waiting), so whoever waits on it waits until :meth:`restore` or :meth:`cut`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._cut = False
        self._hanging = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._closed = False
        #: Chunks received from clients and forwarded (≈ the round trips clients started).
        self.client_writes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            if self._hanging:  # accepted, never answered
                with self._lock:
                    self._socks.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b, count in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, count), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool = False) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self._hanging:
                    continue  # swallowed: the other side waits for an answer that never comes
                if count:
                    self.client_writes += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def hang(self) -> None:
        self._hanging = True

    def cut(self) -> None:
        self._cut = True
        self._hanging = False  # (the connections a hang held are dropped now)
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        if self._hanging:  # what was swallowed broke those connections: drop them
            self.cut()
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
