#!/usr/bin/env python3
"""haproxy_stat.py: ask HAProxy's stats socket (standard library only; socat need not exist).

usage: haproxy_stat.py SOCKET raw COMMAND           print HAProxy's answer to COMMAND
       haproxy_stat.py SOCKET stat PROXY SERVER FIELD...
                                                    print the FIELDs of one `show stat` row
                                                    (SERVER is BACKEND or FRONTEND for the
                                                    proxy's own row), space-separated
       haproxy_stat.py SOCKET until MAX PROXY/SERVER/FIELD OP VALUE...
                                                    poll `show stat` every 0.1 s until every
                                                    condition holds (exit 0, printing the values
                                                    it saw and the Unix time it saw them), for at
                                                    most MAX seconds (exit 1, a hang guard); OP
                                                    is one of == != >= > (numbers for >= and >)

Fields are the CSV columns of `show stat` (HAProxy's management guide, section 9.1): status
(UP, DOWN, "UP 1/2", MAINT...), scur (current sessions), bout (bytes sent to clients), chkfail
(failed checks while the server was up), chkdown (UP to DOWN transitions), check_status (L7OK,
L4CON...), lastchg (seconds since the last change). Exit 1 when the socket or the row is missing.
"""
import socket
import sys
import time


def ask(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(command.encode() + b"\n")
    chunks = []
    while True:
        d = s.recv(65536)
        if not d:
            break
        chunks.append(d)
    s.close()
    return b"".join(chunks).decode()


def stat_row(path, proxy, server, fields):
    lines = ask(path, "show stat").splitlines()
    if not lines or not lines[0].startswith("# "):
        raise SystemExit("haproxy_stat: no 'show stat' header")
    names = lines[0][2:].split(",")
    for line in lines[1:]:
        row = dict(zip(names, line.split(",")))
        if row.get("pxname") == proxy and row.get("svname") == server:
            missing = [f for f in fields if f not in row]
            if missing:
                raise SystemExit("haproxy_stat: no field " + ", ".join(missing))
            return [row[f] for f in fields]
    raise SystemExit(f"haproxy_stat: no row {proxy}/{server}")


def holds(path, conds):
    """The values seen when every condition holds, else None."""
    seen = []
    for target, op, value in conds:
        proxy, server, field = target.split("/")
        got = stat_row(path, proxy, server, [field])[0]
        if op == "==" and got != value or op == "!=" and got == value:
            return None
        if op in (">=", ">"):
            n = int(got or 0)
            if n < int(value) or op == ">" and n == int(value):
                return None
        seen.append(got)
    return seen


def until(path, limit, args):
    if len(args) % 3 or any(op not in ("==", "!=", ">=", ">") for op in args[1::3]):
        sys.exit(__doc__)
    conds = [tuple(args[i:i + 3]) for i in range(0, len(args), 3)]
    end = time.monotonic() + limit
    while True:
        try:
            seen = holds(path, conds)
            if seen is not None:
                print(" ".join(seen + ["%.3f" % time.time()]), flush=True)
                return 0
        except (OSError, SystemExit):
            pass  # HAProxy starting, or a row not there yet
        if time.monotonic() > end:
            return 1
        time.sleep(0.1)


def main(argv):
    if len(argv) >= 4 and argv[2] == "raw":
        sys.stdout.write(ask(argv[1], " ".join(argv[3:])))
    elif len(argv) >= 6 and argv[2] == "stat":
        print(" ".join(stat_row(argv[1], argv[3], argv[4], argv[5:])))
    elif len(argv) >= 7 and argv[2] == "until":
        sys.exit(until(argv[1], float(argv[3]), argv[4:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except OSError as e:
        sys.exit(f"haproxy_stat: {sys.argv[1]}: {e}")
