#!/usr/bin/python3
"""Count what ran: TAP lines of the C unit tests (meson's testlog.json files)
and the pytest results (JUnit XML files); print one closing 'N passed,
N failed' line.

  t/summary.py FILE...    (*.json: meson test logs; *.xml: JUnit results)"""
import json
import re
import sys
import xml.etree.ElementTree as ET

def tap_counts(path):
    passed = failed = 0
    try:
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                out = entry.get("stdout") or ""
                tests = 0
                for tap in out.splitlines():
                    if re.match(r"^ok \d+", tap):
                        passed += 1
                        tests += 1
                    elif re.match(r"^not ok \d+", tap):
                        failed += 1
                        tests += 1
                # A test binary that crashed or printed nothing counts as a failure.
                if entry.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and tests == 0:
                    failed += 1
    except FileNotFoundError:
        failed += 1
    return passed, failed

def junit_counts(path):
    try:
        root = ET.parse(path).getroot()
    except (FileNotFoundError, ET.ParseError):
        return 0, 1, 0
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped

u_pass = u_fail = i_pass = i_fail = i_skip = 0
for path in sys.argv[1:]:
    if path.endswith(".json"):
        p, f = tap_counts(path)
        u_pass, u_fail = u_pass + p, u_fail + f
    else:
        p, f, k = junit_counts(path)
        i_pass, i_fail, i_skip = i_pass + p, i_fail + f, i_skip + k
print(f"unit: {u_pass} passed, {u_fail} failed")
print(f"integration: {i_pass} passed, {i_fail} failed, {i_skip} skipped")
print(f"{u_pass + i_pass} passed, {u_fail + i_fail} failed" + (f", {i_skip} skipped" if i_skip else ""))
sys.exit(1 if u_fail + i_fail else 0)
