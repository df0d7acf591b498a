"""Heartbeat pings against a loopback HTTP recorder started by the test (no external service)."""

import time

from pgdrill import ping


def test_start_success_and_failure_reach_their_endpoints_with_a_summary(ping_recorder):
    base, received = ping_recorder
    url = f"{base}/ping/5f1c-secret-key"
    assert ping.send(url, "start") is None
    assert ping.send(url, "success", {"set": "shop_20261127_021500_utc"}) is None
    assert ping.send(url, "fail", {"error": "disk full"}, exit_code=1) is None
    assert ping.send(url, "fail", exit_code=75, exit_codes=True) is None
    assert received == [
        ("/ping/5f1c-secret-key/start", {}),
        ("/ping/5f1c-secret-key", {"set": "shop_20261127_021500_utc"}),
        ("/ping/5f1c-secret-key/fail", {"error": "disk full"}),
        ("/ping/5f1c-secret-key/75", {}),
    ]


def test_a_failing_or_slow_or_absent_server_never_fails_the_run_nor_shows_the_key(ping_recorder, caplog):
    base, _ = ping_recorder
    started = time.monotonic()
    for url, event in ((f"{base}/broken/secret-key", "success"), (f"{base}/slow-secret-key", "fail"), ("http://127.0.0.1:9/secret-key", "start")):
        message = ping.send(url, event, timeout=0.5)
        assert message and "the run itself is not affected" in message and "secret-key" not in message
    assert time.monotonic() - started < 10
    assert "secret-key" not in caplog.text


def test_urls_are_checked_and_shown_without_secrets():
    assert ping.valid("https://hc-ping.com/uuid") and not ping.valid("ftp://x/y") and not ping.valid("hc-ping.com/uuid")
    assert ping.shown("https://user:pw@hc-ping.com:8443/abc?x=1") == "https://hc-ping.com:8443/…"


def test_a_server_that_trickles_its_answer_is_cut_at_the_deadline_by_the_wall_clock(caplog):
    """A socket timeout bounds each read, not the request: a server that sends one byte every 0.4 s
    never trips it. The deadline is for the whole request, wall clock."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10:
                    if stop.wait(0.4):
                        break
                    conn.sendall(bytes([byte]))
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    try:
        started = time.monotonic()
        message = ping.send(f"http://127.0.0.1:{listener.getsockname()[1]}/trickle-secret-key", "success", timeout=2.0)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    assert elapsed < 3.5, f"the ping held the run {elapsed:.1f} s with a 2 s deadline"
    assert message and "no answer within 2 s" in message and "the run itself is not affected" in message
    assert "secret-key" not in message and "secret-key" not in caplog.text
