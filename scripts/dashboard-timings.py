#!/usr/bin/env python3
"""Times each chart query of the "Product analytics" dashboard on a warehouse (issue 36).

    scripts/dashboard-timings.py WAREHOUSE.sqlite DATASETTE.json [DATE_START DATE_END]

Reads the chart queries from the metadata `segment-loader datasette -o X.json` wrote, resolves
datasette-dashboards' optional `[[ ... ]]` clauses as the plugin does (kept with the filter's
value when it is given, dropped when not), and runs each three times in Python's sqlite3 on a
read-only connection, printing the best wall time and the rows. Run it on a warm page cache.
"""
import json
import re
import sqlite3
import sys
import time


def resolve(sql, params):
    def clause(match):
        body = match.group(1)
        names = re.findall(r":(\w+)", body)
        return body if all(params.get(n) for n in names) else ""
    return re.sub(r"\[\[(.*?)\]\]", clause, sql, flags=re.S)


def main():
    warehouse, metadata = sys.argv[1], sys.argv[2]
    params = {}
    if len(sys.argv) >= 5:
        params = {"date_start": sys.argv[3], "date_end": sys.argv[4]}
    meta = json.load(open(metadata))
    dashboards = meta["plugins"]["datasette-dashboards"]
    db = sqlite3.connect(f"file:{warehouse}?mode=ro", uri=True)
    for slug, dashboard in dashboards.items():
        print(f"{slug} on {warehouse}" + (f", {params['date_start']} to {params['date_end']}" if params else ", no range"))
        for name, chart in dashboard["charts"].items():
            if "query" not in chart:
                continue
            sql = resolve(chart["query"], params)
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            best, rows = None, 0
            for _ in range(3):
                started = time.perf_counter()
                rows = len(db.execute(sql, used).fetchall())
                elapsed = time.perf_counter() - started
                best = elapsed if best is None else min(best, elapsed)
            print(f"  {name:15} {best:7.3f} s  {rows:5} rows")


main()
