# stackform local cloud: scoring harness (stands in for azureml-inference-server-http).
#
# Usage: python harness.py <code_dir> <scoring_script>
# Imports the scoring script, calls init() once, then serves run() on 127.0.0.1 over HTTP.
# Protocol with the local cloud, on the ORIGINAL stdout only: one line, "READY <port>" or "FAILED".
# Everything the user's code prints goes to stderr, which the cloud stores as the deployment log.
# The process exits when its stdin closes (the cloud went away), so it never outlives the cloud.
import importlib.util
import json
import os
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    code_dir, script = sys.argv[1], sys.argv[2]
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    print("stackform harness: loading %s from %s" % (script, code_dir), file=sys.stderr, flush=True)
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)
    try:
        path = os.path.join(code_dir, script)
        spec = importlib.util.spec_from_file_location("score", path)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load scoring script %s" % path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        if hasattr(module, "init"):
            module.init()
        if not hasattr(module, "run"):
            raise AttributeError("the scoring script defines no run() function")
    except BaseException:
        print("stackform harness: init() failed", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        proto.write("FAILED\n")
        proto.flush()
        sys.exit(1)
    print("stackform harness: init() succeeded", file=sys.stderr, flush=True)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status, body, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200, b'"healthy"')

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                with lock:
                    result = module.run(raw)
                if isinstance(result, (bytes, bytearray)):
                    self._send(200, bytes(result), "application/octet-stream")
                else:
                    self._send(200, json.dumps(result).encode("utf-8"))
            except BaseException as exc:
                traceback.print_exc()
                sys.stderr.flush()
                reason = ("%s: %s" % (type(exc).__name__, exc)).replace("\n", " ")[:200]
                self._send(500, json.dumps({"error": reason}).encode("utf-8"))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def watch_stdin():
        try:
            sys.stdin.read()
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    proto.write("READY %d\n" % server.server_address[1])
    proto.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
