"""The HTTP server of the node's API on loopback: a stdlib threaded server in a daemon thread serving a table
of routes (api/routes.py), each an exact path or a prefix ending in '/', plus /metrics from a Prometheus
registry. A route that raises answers 500 and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("alignment_node.api")

# A route returns (status, content type, body bytes).
Route = Callable[[str], tuple[int, str, bytes]]


def json_response(status: int, payload: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload, sort_keys=True).encode()


class ApiServer:
    """Serve ``routes`` (exact path or prefix ending in '/') plus /metrics from ``registry``."""

    def __init__(self, host: str, port: int, routes: dict[str, Route], registry=None, any_origin: bool = False):
        """``any_origin``: answers carry ``Access-Control-Allow-Origin: *`` (the public evidence listener, read by
        other sites' pages)."""
        self.routes = dict(routes)
        if registry is not None:
            self.routes["/metrics"] = lambda _path: (200, CONTENT_TYPE_LATEST, generate_latest(registry))
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "alignment-node"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                path = self.path.split("?", 1)[0]
                route = server._match(path)
                if route is None:
                    status, ctype, body = json_response(404, {"error": f"no such path: {path}"})
                else:
                    try:
                        status, ctype, body = route(path)
                    except Exception:  # a broken route must not kill the server
                        log.exception("route %s failed", path)
                        status, ctype, body = json_response(500, {"error": "internal error"})
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if any_origin:
                    self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                log.debug("http %s", fmt % args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="api", daemon=True)

    def _match(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, route in self.routes.items():
            if prefix.endswith("/") and path.startswith(prefix):
                return route
        return None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "ApiServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


STATUS_TEXT = {200: HTTPStatus.OK.phrase, 206: "Partly healthy", 503: HTTPStatus.SERVICE_UNAVAILABLE.phrase}
