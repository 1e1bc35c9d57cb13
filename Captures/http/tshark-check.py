#!/usr/bin/env python3
"""Cross-check the http plugin with tshark, as HTTPPlugin.crossCheck specifies.

    Captures/http/tshark-check.py [--wirebeat PATH] CAPTURE...

For each capture: tshark's records ("REQ <method> <uri>", "RESP <code>") from
http.request.method / http.request.uri / http.response.code, and the plugin's records
from its events (http.request.method + url.original, interim and final status codes),
compared as multisets. Exit status 1 when any capture disagrees.
"""
import collections, json, subprocess, sys

PORTS = [80, 8080, 8000, 5000, 8002]
# Methods tshark dissects as requests (as tsharkMethods in HTTPPlugin.swift).
TSHARK_METHODS = set("""GET HEAD POST PUT DELETE OPTIONS TRACE CONNECT PATCH PROPFIND PROPPATCH MKCOL COPY MOVE
LOCK UNLOCK SEARCH REPORT CHECKIN CHECKOUT UNCHECKOUT MKACTIVITY MERGE LABEL UPDATE VERSION-CONTROL
BASELINE-CONTROL MKWORKSPACE ORDERPATCH ACL POLL BMOVE BCOPY BDELETE BPROPFIND BPROPPATCH NOTIFY
SUBSCRIBE UNSUBSCRIBE M-SEARCH SSDP MKCALENDAR""".split())

def tshark_records(path):
    cmd = ["tshark", "-r", path]
    for p in PORTS:
        cmd += ["-d", f"tcp.port=={p},http"]
    cmd += ["-Y", "http.request || http.response", "-T", "fields", "-E", "separator=/t",
            "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    records = []
    for line in out.splitlines():
        row = line.split("\t")
        methods = row[0].split(",") if row[0] else []
        uris = row[1].split(",") if len(row) > 1 else []
        if len(uris) != len(methods):
            uris = [row[1]] if len(methods) == 1 else uris
        for i, m in enumerate(methods):
            if m:
                records.append(f"REQ {m} {uris[i] if i < len(uris) else ''}")
        if len(row) > 2:
            records += [f"RESP {c}" for c in row[2].split(",") if c]
    return records

def plugin_records(path, wirebeat):
    out = subprocess.run([wirebeat, "-I", path], capture_output=True, text=True, check=True).stdout
    records = []
    for line in out.splitlines():
        e = json.loads(line)
        if e.get("type") != "http":
            continue
        h = e.get("http", {})
        m = h.get("request", {}).get("method")
        if m in TSHARK_METHODS:
            records.append(f"REQ {m} {e.get('url', {}).get('original', '')}")
        r = h.get("response", {})
        records += [f"RESP {c}" for c in r.get("interim_status_codes", [])]
        if "status_code" in r:
            records.append(f"RESP {r['status_code']}")
    return records

def main():
    args = sys.argv[1:]
    wirebeat = ".build/debug/wirebeat"
    if args[:1] == ["--wirebeat"]:
        wirebeat, args = args[1], args[2:]
    bad = 0
    for path in args:
        t, p = collections.Counter(tshark_records(path)), collections.Counter(plugin_records(path, wirebeat))
        if t == p:
            print(f"agree     {path}: {sum(t.values())} records ({sum(1 for r in t.elements() if r.startswith('REQ'))} requests)")
        else:
            bad += 1
            print(f"DISAGREE  {path}: only tshark {sorted((t - p).elements())}; only plugin {sorted((p - t).elements())}")
    sys.exit(1 if bad else 0)

main()
