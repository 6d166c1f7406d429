"""Merges a cargo-mutants outcomes.json into MUTANTS.json (every mutant's last outcome, by name)
and writes MUTANTS.md from it: one row per file and a total for src/audit/, every mutant missed,
and the mutants .cargo/mutants.toml excludes as equivalent, with their reasons."""
import datetime
import json
import re
import sys
from collections import defaultdict

outcomes, report, whole = sys.argv[1], sys.argv[2], set(sys.argv[3:])
store = report.replace(".md", ".json")
try:
    known = json.load(open(store))
except FileNotFoundError:
    known = {}
# A file run whole replaces what is known of it: its mutants are named by line, and lines move.
known = {n: v for n, v in known.items() if v["file"] not in whole}
today = datetime.date.today().isoformat()
for o in json.load(open(outcomes))["outcomes"]:
    scenario = o["scenario"]
    if not isinstance(scenario, dict) or "Mutant" not in scenario:
        continue
    m = scenario["Mutant"]
    known[m["name"]] = {"file": m["file"], "outcome": o["summary"], "run": today}
# Each pattern in exclude_re follows the comment that gives its reason.
excluded, patterns, reason = [], [], []
try:
    config = open(".cargo/mutants.toml").read()
    listed = re.search(r"exclude_re = \[(.*?)\n\]", config, re.S).group(1)
except (FileNotFoundError, AttributeError):
    listed = ""
for line in listed.splitlines():
    line = line.strip()
    if line.startswith("#"):
        reason.append(line.lstrip("# "))
    elif line:
        pattern = json.loads(line.rstrip(","))
        patterns.append(re.compile(pattern))
        excluded.append(f"- `{pattern}`: {' '.join(reason)}")
        reason = []
# An excluded mutant is not run any more: an outcome kept from before its exclusion is dropped.
known = {n: v for n, v in known.items() if not any(p.search(n) for p in patterns)}
json.dump(known, open(store, "w"), indent=1, sort_keys=True)

kinds = ["CaughtMutant", "MissedMutant", "Timeout", "Unviable"]
counts = defaultdict(lambda: [0, 0, 0, 0])
runs = defaultdict(set)
for v in known.values():
    if v["outcome"] in kinds:
        counts[v["file"]][kinds.index(v["outcome"])] += 1
    runs[v["file"]].add(v["run"])
lines = [
    "# Mutation testing of the pure core and the settings resolution",
    "",
    "Written by `scripts/mutants.sh` (cargo-mutants 27.1.0, unit and property tests only) from",
    "`MUTANTS.json`, every mutant's last outcome. A missed mutant is a change to the code that no",
    "test notices: each is killed by a new test or explained below as equivalent. A timeout is a",
    "mutant that made the tests hang, which a test run notices too: the score counts it as caught.",
    "",
    "| file | caught | missed | timeout | unviable | score | runs |",
    "|---|---:|---:|---:|---:|---:|---|",
]


def row(name, c, when):
    viable = c[0] + c[1] + c[2]
    score = f"{100 * (c[0] + c[2]) / viable:.1f}%" if viable else "-"
    return f"| {name} | {c[0]} | {c[1]} | {c[2]} | {c[3]} | {score} | {when} |"


for f in sorted(counts):
    lines.append(row(f"`{f}`", counts[f], ", ".join(sorted(runs[f]))))
core = [counts[f] for f in counts if f.startswith("src/audit/")]
lines.append(row("**`src/audit/` in all**", [sum(c[i] for c in core) for i in range(4)], ""))
lines += ["", "## Missed", ""]
missed = sorted(n for n, v in known.items() if v["outcome"] == "MissedMutant")
lines += [f"- `{n}`" for n in missed] or ["None in the files run."]
lines += ["", "## Excluded as equivalent", "", "In `.cargo/mutants.toml`; no test can tell these apart from the code.", ""]
lines += excluded or ["None."]
open(report, "w").write("\n".join(lines) + "\n")
