"""Merges a cargo-mutants outcomes.json into MUTANTS.json (every mutant's last outcome, by name)
and writes MUTANTS.md from it: one row per file, and every mutant missed."""
import datetime
import json
import sys
from collections import defaultdict

outcomes, report = sys.argv[1], sys.argv[2]
store = report.replace(".md", ".json")
try:
    known = json.load(open(store))
except FileNotFoundError:
    known = {}
today = datetime.date.today().isoformat()
for o in json.load(open(outcomes))["outcomes"]:
    scenario = o["scenario"]
    if not isinstance(scenario, dict) or "Mutant" not in scenario:
        continue
    m = scenario["Mutant"]
    known[m["name"]] = {"file": m["file"], "outcome": o["summary"], "run": today}
json.dump(known, open(store, "w"), indent=1, sort_keys=True)

kinds = ["CaughtMutant", "MissedMutant", "Timeout", "Unviable"]
counts = defaultdict(lambda: [0, 0, 0, 0])
runs = defaultdict(set)
for v in known.values():
    if v["outcome"] in kinds:
        counts[v["file"]][kinds.index(v["outcome"])] += 1
    runs[v["file"]].add(v["run"])
lines = [
    "# Mutation testing of the pure core",
    "",
    "Written by `scripts/mutants.sh` (cargo-mutants 27.1.0, unit and property tests only) from",
    "`MUTANTS.json`, every mutant's last outcome. A missed mutant is a change to the code that no",
    "test notices: each is killed by a new test or explained below as equivalent.",
    "",
    "| file | caught | missed | timeout | unviable | score | runs |",
    "|---|---:|---:|---:|---:|---:|---|",
]
for f in sorted(counts):
    c = counts[f]
    viable = c[0] + c[1] + c[2]
    score = f"{100 * c[0] / viable:.0f}%" if viable else "-"
    lines.append(f"| `{f}` | {c[0]} | {c[1]} | {c[2]} | {c[3]} | {score} | {', '.join(sorted(runs[f]))} |")
lines += ["", "## Missed", ""]
missed = sorted(n for n, v in known.items() if v["outcome"] == "MissedMutant")
lines += [f"- `{n}`" for n in missed] or ["None in the files run."]
open(report, "w").write("\n".join(lines) + "\n")
