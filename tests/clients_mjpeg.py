"""A tiny MJPEG-over-HTTP camera (multipart/x-mixed-replace) for live-source tests.

OpenCV's FFmpeg backend reads it like an IP camera; ``stop()`` cuts the connection and
``start()`` brings the camera back on the same port.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegCamera:
    def __init__(self, fps: float = 50.0, size: tuple[int, int] = (64, 48), port: int = 0) -> None:
        self.fps, self.size, self.port = fps, size, port
        self.sent = 0
        self._srv: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegCamera":
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not getattr(self.server, "stopping", False):
                        w, h = cam.size
                        img = np.full((h, w, 3), (cam.sent * 7) % 255, np.uint8)
                        jpg = cv2.imencode(".jpg", img)[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        cam.sent += 1
                        time.sleep(1.0 / cam.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        srv.stopping = False
        self.port = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self._srv = srv
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.stopping = True
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
