"""Two webhook receivers on loopback for scripts/bench-abuse.sh: a tarpit that accepts and
never answers, and a fast one that answers 204 and writes when each delivery arrived.
Prints the two ports, then serves until killed."""

import http.server
import socketserver
import sys
import threading
import time

log = open(sys.argv[1], "a", buffering=1)


class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Tarpit(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        log.write(f"tarpit {time.time():.3f}\n")
        time.sleep(3600)

    def log_message(self, *args):
        pass


class Fast(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        log.write(f"fast {time.time():.3f} {self.headers.get('webhook-id') or '-'}\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


tarpit = Threaded(("127.0.0.1", 0), Tarpit)
fast = Threaded(("127.0.0.1", 0), Fast)
for server in (tarpit, fast):
    threading.Thread(target=server.serve_forever, daemon=True).start()
print(tarpit.server_port, fast.server_port, flush=True)
threading.Event().wait()
