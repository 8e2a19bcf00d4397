"""A test upstream on Python's own WSGI server, which folds `-` and `_` in header names as every
CGI-style server does (RFC 3875 section 4.1.18, PEP 3333): `X-Auth-User` and `X_Auth_User` both
become HTTP_X_AUTH_USER, and two of them are joined with a comma. It answers every request with
its HTTP_* variables, PATH_INFO and the number of requests it has answered (HITS) as JSON.

Listens on 127.0.0.1, on a free port that it prints as its first line; it stops when its standard
input closes (when the test that started it ends, however it ends).
"""

import json
import os
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


hits = 0


def app(environ, start_response):
    global hits
    hits += 1
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    seen["PATH_INFO"] = environ.get("PATH_INFO", "")
    seen["HITS"] = hits
    body = json.dumps(seen).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def stop_with_parent():
    sys.stdin.read()
    os._exit(0)


server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
threading.Thread(target=stop_with_parent, daemon=True).start()
print(server.server_port, flush=True)
server.serve_forever()
