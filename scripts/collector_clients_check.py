#!/usr/bin/env python3
"""Real Segment client libraries against segment-collector (issue 13).

Starts the built segment-collector on 127.0.0.1 (a free port) with two sources, one per
library, and sends identify, track, page, screen, group and alias calls with

- segment-analytics-python (Segment's own library; once plain, once with gzip=True), and
- rudder-sdk-python (RudderStack's; it gzips its batches by default),

each with only its host changed to the collector. Every call's messageId is kept as the
library made it. Then SIGTERM (the collector drains and closes its archives), segment-loader
loads OUT/segment-logs, and the warehouse must hold every call exactly once, in the right
table, with the right columns: user and anonymous ids, event names and properties in the
event table, traits in identifies/users and groups/accounts, page names and URLs, alias
previous ids, the library in context_library_name, the collector's receivedAt and the
client's address in context_ip.

Usage: collector_clients_check.py SEGMENT_COLLECTOR SEGMENT_LOADER
Prints one line per check and ends with "collector-clients: N passed, N failed"; exits 1 on a
failure. Every wait is bounded.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import rudderstack.analytics.client as rudder_client
import segment.analytics.client as segment_client

passed, failed = 0, 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def start_collector(binary, out):
    process = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--out", out,
         "--source", "SEGMENT_PY_KEY=segment-python", "--source", "RUDDER_PY_KEY=rudder-python"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # "listening on 127.0.0.1:PORT"; the collector prints it first
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the collector did not start: {line!r} {process.stderr.read()}")
    return process, "http://" + line.split()[-1]


def send_calls(client, tag):
    """The six calls of the Segment Spec; returns {messageId: (type, call)}."""
    errors = []
    sent = {}

    def keep(result, kind):
        ok, message = result
        if not ok:
            errors.append(f"{kind} was not queued")
        sent[message["messageId"]] = (kind, message)

    user, anon = f"{tag}-user", f"{tag}-anon"
    keep(client.identify(user, {"email": f"{tag}@example.com", "plan": "pro", "seats": 3}, anonymous_id=anon), "identify")
    keep(client.track(user, "Order Completed", {"revenue": 42.5, "currency": "EUR", "items": 2}), "track")
    keep(client.track(user, "Signed Up", {"referrer": "newsletter"}), "track")
    keep(client.page(user, "Docs", "Pricing", {"url": "https://example.com/pricing", "path": "/pricing"}), "page")
    keep(client.screen(user, "App", "Settings", {"dark_mode": True}), "screen")
    keep(client.group(user, f"{tag}-group", {"name": "Acme Inc", "employees": 120}), "group")
    keep(client.alias(anon, user), "alias")
    return sent, errors


def main():
    collector, loader = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "collected")
        process, host = start_collector(collector, out)
        errors = []
        try:
            on_error = lambda error, batch: errors.append(f"{error}")  # noqa: E731
            expected = {}
            for tag, client in [
                ("segment", segment_client.Client("SEGMENT_PY_KEY", host=host, on_error=on_error, max_retries=1, timeout=10)),
                ("segment-gzip", segment_client.Client("SEGMENT_PY_KEY", host=host, gzip=True, on_error=on_error, max_retries=1, timeout=10)),
                ("rudder", rudder_client.Client("RUDDER_PY_KEY", host=host, on_error=on_error, max_retries=1, timeout=10)),
            ]:
                sent, queued_errors = send_calls(client, tag)
                errors += queued_errors
                client.flush()
                client.join()
                expected[tag] = sent
            check("every library delivered without an error", not errors, errors)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = None
        check("the collector drained and exited 0 on SIGTERM", code == 0, process.stderr.read())
        check("no archive left open in .incoming/", os.listdir(os.path.join(out, ".incoming")) == [])

        db = os.path.join(work, "warehouse.sqlite")
        load = subprocess.run([loader, "load", "--db", db, os.path.join(out, "segment-logs")],
                              capture_output=True, text=True, timeout=300)
        check("segment-loader loaded the collector's archives", load.returncode == 0, load.stdout + load.stderr)
        con = sqlite3.connect(db)
        q = lambda sql, *args: con.execute(sql, args).fetchall()  # noqa: E731

        check("no rejected lines", q("SELECT count(*) FROM _rejects") == [(0,)], q("SELECT reason FROM _rejects"))
        check("both sources filed by source id",
              [r[0] for r in q("SELECT DISTINCT source_id FROM _files ORDER BY 1")] == ["rudder-python", "segment-python"])
        tables = {"identify": "identifies", "track": "tracks", "page": "pages", "screen": "screens", "group": "groups", "alias": "aliases"}
        for tag, sent in expected.items():
            for message_id, (kind, message) in sent.items():
                rows = q(f"SELECT count(*) FROM {tables[kind]} WHERE id = ?", message_id)
                check(f"{tag} {kind} {message_id[:8]}… is in {tables[kind]} once", rows == [(1,)], rows)
            user = f"{tag}-user"
            library = q("SELECT DISTINCT context_library_name FROM tracks WHERE user_id = ?", user)
            check(f"{tag}: context_library_name is the library's own", len(library) == 1 and "python" in (library[0][0] or "").lower(), library)
            check(f"{tag}: the collector set receivedAt and the client's address",
                  q("SELECT count(*) FROM tracks WHERE user_id = ? AND received_at IS NOT NULL AND context_ip = '127.0.0.1'", user) == [(2,)])
            check(f"{tag}: Order Completed properties in order_completed",
                  q("SELECT revenue, currency, items FROM order_completed WHERE user_id = ?", user) == [(42.5, "EUR", 2)],
                  q("SELECT * FROM order_completed WHERE user_id = ?", user))
            check(f"{tag}: Signed Up in signed_up", q("SELECT referrer FROM signed_up WHERE user_id = ?", user) == [("newsletter",)])
            check(f"{tag}: identify traits", q("SELECT email, plan, seats, anonymous_id FROM identifies WHERE user_id = ?", user)
                  == [(f"{tag}@example.com", "pro", 3, f"{tag}-anon")])
            check(f"{tag}: users row", q("SELECT email, plan FROM users WHERE id = ?", user) == [(f"{tag}@example.com", "pro")])
            check(f"{tag}: page name, category and URL",
                  q("SELECT name, category, url, path FROM pages WHERE user_id = ?", user) == [("Pricing", "Docs", "https://example.com/pricing", "/pricing")],
                  q("SELECT * FROM pages WHERE user_id = ?", user))
            check(f"{tag}: screen name", q("SELECT name FROM screens WHERE user_id = ?", user) == [("Settings",)])
            check(f"{tag}: group traits and accounts row",
                  q("SELECT g.name, g.employees, a.name FROM groups g JOIN accounts a ON a.id = g.group_id WHERE g.user_id = ?", user)
                  == [("Acme Inc", 120, "Acme Inc")])
            check(f"{tag}: alias previous id", q("SELECT previous_id FROM aliases WHERE user_id = ?", user) == [(f"{tag}-anon",)])
    print(f"collector-clients: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
