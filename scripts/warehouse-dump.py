#!/usr/bin/env python3
"""A warehouse's content as canonical text, for comparing what two builds write.

    scripts/warehouse-dump.py dump W.sqlite [ROOT]            prints the dump
    scripts/warehouse-dump.py compare A.sqlite B.sqlite [ROOT_A ROOT_B]
                                                        exits 1 and shows the first differences

A warehouse may also be PostgreSQL, as `postgresql://...#SCHEMA` (read with `psql`): its
columns are shown with PostgreSQL's types and its values as COPY's text, so compare two
PostgreSQL warehouses with each other.

A ROOT is the folder the archives were loaded from (a pipeline stores absolute paths): text
values that start with it are printed with `<root>` instead, so loads from two folders compare.

The dump holds every table (its columns with their types, in order, and its rows sorted),
every index, and the schema catalog, leaving out what differs between two loads of the same
data by design: load times and load ids (`uuid_ts`, `loaded_at`, `first_load_id`, `load_id`,
`_loads`, the timing columns of `_models`). Values are printed with their SQLite type, so an
INTEGER 1 and a TEXT '1' differ.
"""
import sqlite3
import subprocess
import sys

VOLATILE_COLUMNS = {"uuid_ts", "loaded_at", "first_load_id", "load_id", "built_at", "seconds"}
VOLATILE_TABLES = {"_loads"}
# The column Citus places a call table's rows by (the anonymous id, else the user id): not
# part of the warehouse's content, so a Citus warehouse compares with the others.
PLACEMENT_COLUMNS = {"_person_key"}


def value(v, root=None):
    if isinstance(v, str) and root and v.startswith(root.rstrip("/") + "/"):
        v = "<root>/" + v[len(root.rstrip("/")) + 1:]
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "X'" + v.hex() + "'"
    if isinstance(v, str):
        return repr(v)
    return f"{type(v).__name__}:{v!r}"


def psql(url, schema, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", f"SET search_path = \"{schema}\"", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.split("\n") if line != ""]


def dump_postgres(location, root=None):
    url, _, schema = location.partition("#")
    schema = schema or "segment"
    out = [f"index {name}" for name in psql(url, schema, f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}' ORDER BY 1")]
    tables = psql(url, schema, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}' ORDER BY 1")
    for table in tables:
        if table in VOLATILE_TABLES:
            continue
        columns = [line.split("|", 1) for line in psql(url, schema, f"""
            SELECT column_name, data_type FROM information_schema.columns
            WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position""")]
        columns = [(c, t) for c, t in columns if c not in PLACEMENT_COLUMNS]
        out.append(f"table {table} (" + ", ".join(f"{c} {t}" for c, t in columns) + ")")
        kept = [c for c, _ in columns if c not in VOLATILE_COLUMNS]
        if not kept:
            continue
        select = ", ".join(f'"{c}"' for c in kept)
        text = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", f"SET search_path = \"{schema}\"",
                               "-c", f'COPY (SELECT {select} FROM "{table}") TO STDOUT'], check=True, capture_output=True, text=True).stdout
        rows = sorted(line for line in text.split("\n") if line != "")
        for row in rows:
            if root:
                row = row.replace(root.rstrip("/") + "/", "<root>/")
            out.append(f"  {table}: " + row.replace("\t", " | "))
    return out


def dump(path, root=None):
    if path.startswith("postgres://") or path.startswith("postgresql://"):
        return dump_postgres(path, root)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = []
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        out.append(f"index {name}")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for table in tables:
        if table in VOLATILE_TABLES:
            continue
        columns = [(r[1], r[2]) for r in db.execute(f'PRAGMA table_info("{table}")')]
        out.append(f"table {table} (" + ", ".join(f"{c} {t}" for c, t in columns) + ")")
        kept = [c for c, _ in columns if c not in VOLATILE_COLUMNS]
        if not kept:
            continue
        select = ", ".join(f'"{c}"' for c in kept)
        rows = sorted(tuple(value(v, root) for v in row) for row in db.execute(f'SELECT {select} FROM "{table}"'))
        for row in rows:
            out.append(f"  {table}: " + " | ".join(row))
    return out


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "dump":
        print("\n".join(dump(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)))
        return 0
    if len(sys.argv) in (4, 6) and sys.argv[1] == "compare":
        roots = sys.argv[4:6] if len(sys.argv) == 6 else [None, None]
        a, b = dump(sys.argv[2], roots[0]), dump(sys.argv[3], roots[1])
        if a == b:
            print(f"same: {len(a)} lines of tables, columns, rows and indexes")
            return 0
        set_a, set_b = set(a), set(b)
        only_a = [line for line in a if line not in set_b]
        only_b = [line for line in b if line not in set_a]
        print(f"different: {len(only_a)} lines only in {sys.argv[2]}, {len(only_b)} only in {sys.argv[3]}")
        for line in only_a[:20]:
            print(f"- {line}")
        for line in only_b[:20]:
            print(f"+ {line}")
        return 1
    print(__doc__.strip(), file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
