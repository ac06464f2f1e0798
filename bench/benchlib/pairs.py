"""(b) and (c) measured back to back on the same workloads, the order alternating from one pair
to the next: ratios a shared, noisy machine can still tell apart. A disturbance of the machine
touches one pair, not a whole column, and an order effect cancels out over pairs. Used by the
experiment (pairs per visit of a point) and by the full real-app run (its pages and uploads).

A pair is {"first": "b"|"c", "b": {workload: entry}, "c": {workload: entry}}, each entry as
realapp.RealApp.workload gives it."""

class Pairs:
    """Measures pairs of (b) and (c) on WORKLOADS; BENCH is run.py's Bench, APP a RealApp with its
    school seeded. Each stack's sessions are logged in once and kept for every later pair."""

    def __init__(self, bench, app, workloads):
        self.bench, self.app, self.workloads = bench, app, workloads
        self.sessions = {}

    def measure(self, stack):
        out = {}
        for name in self.workloads:
            who = self.app.who(name)
            if who in ("pupil", "admin", "upload") and (stack, who) not in self.sessions:
                self.sessions[stack, who] = self.app.sessions(stack, who)
            url = self.bench.url(stack, self.app.path(name))
            self.bench.log(f"({stack}) {name}: {self.bench.args.duration} s")
            out[name] = self.bench.section(
                f"({stack}) {name}", self.app.workload, stack, name, who, url, self.bench.args.duration,
                self.bench.args.warmup, self.sessions.get((stack, who)))
        return out

    def pair(self, first):
        """(b) and (c) as deployed now, FIRST first."""
        out = {"first": first}
        for stack in (first, "c" if first == "b" else "b"):
            out[stack] = self.measure(stack)
        out["memory"] = self.bench.section("(c) memory", self.bench.memory, "lernmanager.service")
        return out

    def alternating(self, count, start="b"):
        """COUNT pairs, the first with START first, then the other, and so on."""
        other = {"b": "c", "c": "b"}
        return [self.pair(start if n % 2 == 0 else other[start]) for n in range(count)]


# --- figures -----------------------------------------------------------------------------------

def ratio(key, c, b):
    """(c)'s KEY ÷ (b)'s of one pair's entries; None when either was not measured."""
    if c.get(key) is None or not b.get(key):
        return None
    return c[key] / b[key]


def cpu_total(entry):
    return (entry.get("cpu_ms_per_request") or {}).get("total")


def median(values):
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2


def entries(pairs, workload):
    """[(c's entry, b's entry)] of WORKLOAD in every pair, {} where one was not measured."""
    return [(pair.get("c", {}).get(workload) or {}, pair.get("b", {}).get(workload) or {}) for pair in pairs]


def ratios(pairs, workload, key):
    """Each pair's (c) ÷ (b) of KEY ("rps", "p99_ms" or "cpu": CPU per request, app + nginx)."""
    if key == "cpu":
        return [ratio("total", {"total": cpu_total(c)}, {"total": cpu_total(b)}) for c, b in entries(pairs, workload)]
    return [ratio(key, c, b) for c, b in entries(pairs, workload)]


def median_ratio(pairs, workload, key):
    return median(ratios(pairs, workload, key))


def _fmt(value, pattern):
    return "–" if value is None else pattern.format(value)


def _cell(values, pattern):
    return " / ".join(_fmt(v, pattern) for v in values)


def _cpu(entry):
    cpu = entry.get("cpu_ms_per_request") or {}
    if cpu.get("total") is None:
        return None
    return " + ".join(f"{cpu[k]:.1f}" for k in ("app", "nginx") if cpu.get(k) is not None)


HEADER = ["| req/s (c) | req/s (b) | ÷ (b) | median | p99 ms (c) | p99 ÷ (b) | median "
          "| CPU ms/req (c) app + nginx | CPU (b) | failed (c) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]


def header(first_column):
    """The table head of row(): FIRST_COLUMN names what each row is (a point, a workload)."""
    return [f"| {first_column} " + HEADER[0], HEADER[1]]


def row(label, pairs, workload):
    """One Markdown row: WORKLOAD's figures in every pair of PAIRS, each pair's ratios (ᶜ: (c) was
    measured first) and their medians in bold."""
    measured = entries(pairs, workload)
    rps, p99 = ratios(pairs, workload, "rps"), ratios(pairs, workload, "p99_ms")
    marks = ["ᶜ" if pair.get("first") == "c" else "" for pair in pairs]
    return " | ".join([
        f"| {label}",
        _cell([c.get("rps") for c, _ in measured], "{:.0f}"),
        _cell([b.get("rps") for _, b in measured], "{:.0f}"),
        " / ".join(_fmt(r, "{:.2f}") + mark for r, mark in zip(rps, marks)),
        _fmt(median(rps), "**{:.2f}**"),
        _cell([c.get("p99_ms") for c, _ in measured], "{:.0f}"),
        _cell(p99, "{:.2f}"),
        _fmt(median(p99), "**{:.2f}**"),
        _cell([_cpu(c) for c, _ in measured], "{}"),
        _cell([_cpu(b) for _, b in measured], "{}"),
        _cell([c.get("failed") for c, _ in measured], "{}")]) + " |"
