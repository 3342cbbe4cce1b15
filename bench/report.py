#!/usr/bin/env python3
"""Rewrites the generated sections of BENCHMARKS.md from bench/results/*.json (written by bench/run).

Usage: python3 bench/report.py [RESULTS.json]   (default: the newer of bench/results/full.json and quick.json)

BENCHMARKS.md holds hand-written text too (its introduction, why targets are not met, and the log of
what we measured and changed). This script rewrites only what lies between a line
`<!-- generated: NAME -->` and the next line `<!-- end generated -->`, for each NAME in
GENERATED, and keeps every other byte of the file as it is. It writes nothing if a section's
markers are missing, unknown, repeated or unclosed.
"""
import json, re, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "BENCHMARKS.md"

# The generated sections, in the order they appear in BENCHMARKS.md.
GENERATED = ("header", "targets", "measurements")
START = re.compile(r"^<!-- generated: (\S+) -->$", re.M)
END = "<!-- end generated -->"
END_LINE = re.compile("^" + re.escape(END) + "$", re.M)

# The keep_resident settings bench/run runs the load benchmark with.
KEEP_RESIDENT_SETTINGS = ("default", "0")
# The server's CPU per hello request over HTTP keep-alive (`wrk -c50`) the project aims for.
HELLO_CPU_TARGET_US = 20
# Tether's FastCGI hello req/s through nginx against the no-Wasm responder's, the project's aim.
FASTCGI_BASELINE_TARGET = 0.8
# The Tether contenders in the hello and FastCGI comparisons, and how the targets table names them.
CONTENDERS = (("tether", ""), ("tether-guest-threads", " with `guests_start_on = \"guest-threads\"`"))

def load_results():
    if len(sys.argv) > 1:
        path = Path(sys.argv[1]).resolve()
        return path, json.loads(path.read_text())
    full, quick = RESULTS / "full.json", RESULTS / "quick.json"
    candidates = [p for p in (full, quick) if p.exists()]
    if not candidates:
        raise SystemExit("no results: run bench/run first")
    path = max(candidates, key=lambda p: p.stat().st_mtime)
    return path, json.loads(path.read_text())

def splice(text, sections):
    """`text` with the body of each generated section replaced by `sections[name]`; everything
    outside the markers stays byte for byte."""
    pieces, pos, seen = [], 0, []
    for start in START.finditer(text):
        name = start.group(1)
        if start.start() < pos:
            raise SystemExit(f"{REPORT.name}: generated section {name!r} starts inside the one before it")
        if name not in sections:
            raise SystemExit(f"{REPORT.name}: unknown generated section {name!r} (known: {', '.join(GENERATED)})")
        if name in seen:
            raise SystemExit(f"{REPORT.name}: generated section {name!r} appears twice")
        end = END_LINE.search(text, start.end())
        if not end or START.search(text, start.end(), end.start()):
            raise SystemExit(f"{REPORT.name}: generated section {name!r} has no {END!r} line before the next section")
        seen.append(name)
        pieces += [text[pos:start.end()], "\n\n", sections[name].strip("\n"), "\n\n"]
        pos = end.start()
    if len(END_LINE.findall(text)) != len(seen):
        raise SystemExit(f"{REPORT.name}: a {END!r} line without its `<!-- generated: NAME -->` line")
    missing = [name for name in sections if name not in seen]
    if missing:
        raise SystemExit(f"{REPORT.name}: no markers for generated section(s) {', '.join(missing)}: "
                         f"add a line `<!-- generated: NAME -->` and a line `{END}` where each goes")
    return "".join(pieces) + text[pos:]

def heading_anchor(title):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"`([^`]*)`", r"\1", title).strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")

def broken_anchors(text):
    """Links within the document (`](#x)` and definitions `[label]: #x`) whose heading is gone."""
    anchors, counts = set(), {}
    for title in re.findall(r"^#{1,6} +(.+?) *#* *$", text, re.M):
        base = heading_anchor(title)
        n = counts.get(base, 0)
        counts[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    targets = re.findall(r"\]\(#([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]: *#(\S+)", text, re.M)
    return sorted({t for t in targets if t not in anchors})

def median(values):
    return statistics.median(values)

def fmt(x, digits=0):
    return f"{x:,.{digits}f}"

def verdict(ok):
    return "met" if ok else "**not met**"

def merged(rows):
    """Rows of one measurement from several runs of a program, as one row: the median of each
    number over the runs (the largest for `max_*`); `runs` keeps the rows."""
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [row[key] for row in rows]
            out[key] = max(values) if key.startswith("max") else median(values)
    out["runs"] = rows
    return out

def rss_kinds(row):
    """How a load row's idle RSS before and after splits into anonymous memory (heap, instance
    pool) and pages of mapped files (code the kernel can drop), where the run recorded it."""
    if "anon_after_kib" not in row:
        return ""
    return (f"; anonymous {row['anon_after_kib'] / 1024:.1f} MiB (pre-load {row['anon_idle_kib'] / 1024:.1f}), "
            f"file-backed {row['file_after_kib'] / 1024:.1f} MiB (pre-load {row['file_idle_kib'] / 1024:.1f})")

def grouped(rows, key):
    """Rows from several runs, grouped by `key(row)` and merged."""
    groups = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return {k: merged(v) for k, v in groups.items()}

def per_run(row, key, scale=1.0, digits=0):
    """`key` in each run of a merged row, comma-separated."""
    return ", ".join(fmt(run[key] * scale, digits) for run in row["runs"])

def medians(runs, key):
    """Per contender, the median of `key` over its wrk rounds."""
    return {name: median([run[key] for run in rounds]) for name, rounds in runs.items()}

def cpu_medians(runs):
    """Per contender whose server process was measured, the median CPU µs per request."""
    return {name: median([run["cpu_us_per_request"] for run in rounds])
            for name, rounds in runs.items() if all("cpu_us_per_request" in run for run in rounds)}

def wrk_table(w, runs, ratios_to=()):
    """A table of wrk comparisons: median req/s and p99 per contender, each round's req/s, the
    req/s ratio to each contender named in `ratios_to`, and the server's CPU per request where it
    was measured."""
    rps, p99, cpu = medians(runs, "rps"), medians(runs, "p99_ms"), cpu_medians(runs)
    cpu_column = " median CPU µs per request |" if cpu else ""
    w("| server | median req/s | median p99 ms | per round req/s |" + "".join(f" vs {r} |" for r in ratios_to) + cpu_column)
    w("|---|---|---|---|" + "---|" * len(ratios_to) + ("---|" if cpu else ""))
    for name, rounds in runs.items():
        ratios = "".join(f" {rps[name] / rps[r]:.2f}× |" for r in ratios_to)
        cpu_cell = f" {cpu[name]:.1f} |" if name in cpu else (" |" if cpu else "")
        w(f"| {name} | {fmt(rps[name])} | {p99[name]:.2f} | {', '.join(fmt(run['rps']) for run in rounds)} |{ratios}{cpu_cell}")

def main():
    path, r = load_results()
    m = r["machine"]
    cmd = "QUICK=1 bench/run" if r["quick"] else "bench/run"
    out = []
    w = out.append
    sections = {}
    def section(name):
        """Ends generated section `name` with what was written since the one before it."""
        sections[name] = "\n".join(out)
        out.clear()
    w(f"Generated by `{cmd}` (`make bench{'-quick' if r['quick'] else ''}`) on {r['date']}; raw data in "
      f"[`{path.relative_to(ROOT)}`]({path.relative_to(ROOT)}).\n")
    w(f"Machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}, {m['rustc']}, {m['wrk']}"
      + (f", vm.max_map_count {m['max_map_count']:,}" if "max_map_count" in m else "") + ". "
      "Everything runs on 127.0.0.1, with the load generator on the same cores as the server. "
      f"Comparisons alternate their contenders, {r['rounds']} round(s); tables give medians over rounds."
      + (f" The machine is a virtual one on a shared host: the hypervisor took {m['steal_percent']} % of CPU time "
         "(steal) during this run; figures from runs with high steal are noisier and slower."
         if "steal_percent" in m else "") + "\n")
    section("header")

    inst = grouped(r["instantiate"], lambda row: (row["pooling"], row["part"]))
    hello = r["hello"]
    rps = medians(hello, "rps")
    lat = grouped(r["abort_latency"], lambda row: (row.get("via", "http"), row["guest"], row["side"]))
    fcgi = r.get("fastcgi")
    if fcgi:
        frps, fp99 = medians(fcgi, "rps"), medians(fcgi, "p99_ms")
    # Paired: each round's two runs are back to back, so the machine's drift between rounds cancels.
    watcher = r["watcher"]
    watcher_costs = [1 - on["rps"] / off["rps"] for on, off in zip(watcher["tether"], watcher["tether-no-watcher"])]
    watcher_cost = median(watcher_costs)

    w("## Targets\n")
    w("| figure | target | measured | |")
    w("|---|---|---|---|")
    call, teardown = inst[(True, "instantiate-call")], inst[(True, "teardown")]
    w(f"| instantiate + call, hello, pooling, median (the response is complete) | ≤ 10 µs | {call['p50_us']:.1f} µs "
      f"(then {teardown['p50_us']:.1f} µs of teardown, after the response) | {verdict(call['p50_us'] <= 10)} |")
    for via, goal in (("http", 200), ("nginx-fastcgi", 400)):
        for guest in ("sleeping", "spinning"):
            row = lat.get((via, guest, "client-close-to-stopped"))
            if row:
                w(f"| abort latency, {guest} guest, {via}, p99 (client close → guest stopped) | ≤ {goal} µs | {row['p99_us']:.0f} µs | {verdict(row['p99_us'] <= goal)} |")
            proxy = lat.get((via, f"wasi-http {guest}", "client-close-to-stopped"))
            if row and proxy:
                w(f"| abort latency, wasi:http {guest} guest, {via}, p99 | ≤ the Tether guest's ({row['p99_us']:.0f} µs) | {proxy['p99_us']:.0f} µs | {verdict(proxy['p99_us'] <= row['p99_us'])} |")
    w(f"| cost of the abort watcher on hello req/s | < 5 % | {watcher_cost * 100:.1f} % | {verdict(watcher_cost < 0.05)} |")
    for name, how in CONTENDERS:
        if name in rps:
            ratio = rps[name] / rps["nginx"]
            w(f"| hello req/s, tether{how} / nginx `return 200` | ≥ 0.5× | {ratio:.2f}× | {verdict(ratio >= 0.5)} |")
    hello_cpu = cpu_medians(hello)
    for name, how in CONTENDERS:
        if name in hello_cpu:
            w(f"| CPU per hello request over HTTP{how}, server's, `wrk -c50` | ≤ {HELLO_CPU_TARGET_US} µs | {hello_cpu[name]:.1f} µs "
              f"(baseline {hello_cpu['baseline']:.1f}, nginx {hello_cpu['nginx']:.1f}) | {verdict(hello_cpu[name] <= HELLO_CPU_TARGET_US)} |")
    ws = r.get("wasmtime_serve")
    if ws:
        wrps = medians(ws, "rps")
        w(f"| hello req/s, tether / `wasmtime serve` | ≥ 5× | {wrps['tether'] / wrps['wasmtime-serve']:.2f}× | {verdict(wrps['tether'] / wrps['wasmtime-serve'] >= 5)} |")
        if "tether-wasi-http" in wrps:
            ratio = wrps["tether-wasi-http"] / wrps["wasmtime-serve"]
            w(f"| the same wasi:http component, req/s, tether / `wasmtime serve` | ≥ 5× | {ratio:.2f}× | {verdict(ratio >= 5)} |")
    cold = r.get("cold_start")
    if cold:
        warm_ms = median(cold["warm_ms"])
        w(f"| cold start, {cold['routes']} routes, warm compile cache, median | ≤ 50 ms | {warm_ms:.1f} ms | {verdict(warm_ms <= 50)} |")
    load = grouped(r.get("load", []), lambda row: row["bench"] + row.get("side", "") + row.get("keep_resident", "default"))
    conc = load.get("concurrencydefault")
    if conc:
        peak_mib = conc["rss_peak_kib"] / 1024
        w(f"| {conc['clients']:,} in-flight sleeping guests: peak RSS | ≤ 1 GiB | {peak_mib:.0f} MiB | {verdict(peak_mib <= 1024)} |")
    under = load.get("aborts-under-loadclient-close-to-stoppeddefault")
    if under:
        w(f"| {int(under['aborted']):,} of {under['clients']:,} clients abort at once: p99 close → stopped | ≤ 5 ms | {under['p99_us'] / 1e3:.1f} ms | {verdict(under['p99_us'] <= 5000)} |")
    for setting in KEEP_RESIDENT_SETTINGS:
        row = load.get("aborts-under-loadclient-close-to-stopped" + setting)
        if row:
            back = row["rss_after_kib"] <= row["rss_idle_kib"] * 1.1
            w(f"| RSS once idle after that load, `keep_resident = {setting}` | pre-load level | {row['rss_after_kib'] / 1024:.0f} MiB "
              f"(pre-load {row['rss_idle_kib'] / 1024:.0f} MiB){rss_kinds(row)} | {verdict(back)} |")
    if fcgi:
        ratio = frps["tether"] / frps["php-fpm"]
        ceiling = f" (no-Wasm baseline: {frps['baseline'] / frps['php-fpm']:.2f}×)" if "baseline" in frps else ""
        w(f"| hello through nginx FastCGI, req/s tether / php-fpm | ≥ 3× | {ratio:.2f}×{ceiling} | {verdict(ratio >= 3)} |")
        w(f"| hello through nginx FastCGI, p99 tether vs php-fpm | lower | {fp99['tether']:.2f} vs {fp99['php-fpm']:.2f} ms | {verdict(fp99['tether'] < fp99['php-fpm'])} |")
        for name, how in CONTENDERS:
            if name in frps and "baseline" in frps:
                ratio = frps[name] / frps["baseline"]
                w(f"| hello through nginx FastCGI{how}, req/s tether / no-Wasm baseline | ≥ {FASTCGI_BASELINE_TARGET}× | {ratio:.2f}× | {verdict(ratio >= FASTCGI_BASELINE_TARGET)} |")
    w("")
    section("targets")

    w("## Per-request instantiate + call\n")
    w("`target/release/instantiate`: in one process, two parts timed separately, in the order the server "
      "runs them. *instantiate + call*: a fresh `Store`, instantiation from the route's `InstancePre`, the "
      "hello guest's `handle` (with its host calls) and the end of its response into a sink that discards "
      "it; no sockets. Over a socket, the client has its whole response at this point. *teardown*: "
      "dropping the store, which resets the instance's pool slot (its memory's dirty pages, found with "
      "Linux's PAGEMAP_SCAN, its table, its fiber stack); the server does this after the response is out, "
      "so it costs throughput, not the client's wait. *total*: both. "
      f"{int(call['n']):,} requests after a warm-up, in each of {len(call['runs'])} runs of the program; "
      "each figure is the median over runs.\n")
    w("| allocator | part | median µs | p90 µs | p99 µs | mean µs | median per run µs |")
    w("|---|---|---|---|---|---|---|")
    for pooling in (True, False):
        for part, label in (("instantiate-call", "instantiate + call"), ("teardown", "teardown"), ("total", "total")):
            row = inst[(pooling, part)]
            w(f"| {'pooling' if pooling else 'on-demand'} | {label} | {row['p50_us']:.1f} | {row['p90_us']:.1f} | {row['p99_us']:.1f} "
              f"| {row['mean_us']:.1f} | {per_run(row, 'p50_us', digits=1)} |")
    total = lambda pooling: inst[(pooling, "total")]["p50_us"]
    w(f"\nPooling / on-demand, median total: {total(True) / total(False):.2f}×.\n")

    w("## Hello over HTTP/1.1 keep-alive, 50 connections\n")
    first = next(iter(hello.values()))[0]["command"]
    w(f"`{first}` (URL per contender), after a warm-up, contenders alternating. `tether` watches the "
      "client while the guest runs (prompt abort detection), and starts each hello on the I/O thread that "
      "read it (`guests_start_on = \"auto\"`, the default); `tether-guest-threads` is the same with "
      "`guests_start_on = \"guest-threads\"` (bench/conf/hello-guest-threads.toml): each guest starts on "
      "a guest thread (ARCHITECTURE.md, *Threads*); `baseline` is "
      "`target/release/baseline`, a minimal tokio server sending the same bytes without Wasm; "
      "`nginx` answers `return 200` itself (bench/conf/nginx-hello.conf).\n")
    wrk_table(w, hello, ratios_to=("nginx", "baseline"))

    w("\n### What the abort watcher costs\n")
    w(f"The same server and command, {len(watcher_costs)} rounds of two back-to-back runs (order alternating): "
      "`tether` on a route in prompt mode, which watches the client while the guest runs, and "
      "`tether-no-watcher` on a route in PHP-exact write mode, which leaves the socket alone. The cost is "
      "the median over rounds of each round's difference, so that the machine's drift between rounds cancels. "
      "The routes also differ in one more way: in write mode nothing watches the socket, so the response's "
      "hand-back must wake the connection task, where in prompt mode the client's next request does "
      "(ARCHITECTURE.md, *When a response is over*); that wake-up is in the write-mode figure.\n")
    wrk_table(w, watcher)
    w(f"\nPer round: {', '.join(f'{c * 100:+.1f} %' for c in watcher_costs)}. Watcher cost: {watcher_cost * 100:.1f} % of hello req/s"
      + (" (negative: the watching route was the faster)" if watcher_cost < 0 else "") + ".\n")

    if fcgi:
        w("## Hello through nginx FastCGI: Tether against php-fpm\n")
        first = next(iter(fcgi.values()))[0]["command"]
        w(f"`{first}` (URL per contender), alternating. One nginx (2 workers, bench/conf/nginx-fastcgi.conf, "
          "the reference's throughput settings) passes one port to php-fpm 8.2 (pm static, 4 children, "
          "Unix socket, `<?php echo \"hello\";`, bench/conf/php-fpm.conf), another to Tether's hello "
          "guest on a Unix socket (bench/conf/fastcgi.toml), another to the same with "
          "`guests_start_on = \"guest-threads\"` (`tether-guest-threads`, bench/conf/fastcgi-guest-threads.toml), and one to `baseline`, "
          "`target/release/fastcgi_baseline`: a minimal tokio FastCGI responder on a Unix socket that "
          "sends the same bytes as Tether and does nothing else, so its figure is the most any "
          "application gets through this nginx with `wrk` on the same two cores. The reference "
          "measured php-fpm at 10.9k–14.3k req/s, p99 6–9 ms on this machine.\n")
        wrk_table(w, fcgi, ratios_to=("php-fpm", "baseline") if "baseline" in frps else ())
        w(f"\nTether / php-fpm: {frps['tether'] / frps['php-fpm']:.2f}× the requests per second"
          + (f"; the no-Wasm baseline / php-fpm: {frps['baseline'] / frps['php-fpm']:.2f}×" if "baseline" in frps else "") + ".\n")

    if ws:
        w("## Hello against `wasmtime serve`\n")
        w(f"`{next(iter(ws.values()))[0]['command']}` (URL per contender), alternating. "
          f"`wasmtime serve -S cli` (wasmtime-cli {r.get('wasmtime_version', '48.0.8')}, installed by the harness into "
          "target/bench-tools) runs bench/wasi-hello, a wasi:http proxy component sending the same "
          "response as Tether's hello guest; both create a fresh instance per request and both guests "
          "are built with Rust's std (hence `-S cli`). `tether-wasi-http` is Tether serving that same "
          "component on a `world = \"wasi-http\"` route. The reference measured `wasmtime serve` at "
          "10.9k–11.5k req/s here (../shared/reference/wasmtime-serve/RESULTS.md).\n")
        wrk_table(w, ws)
        w(f"\nTether / wasmtime serve: {wrps['tether'] / wrps['wasmtime-serve']:.2f}×"
          + (f"; the same component on Tether / wasmtime serve: {wrps['tether-wasi-http'] / wrps['wasmtime-serve']:.2f}×"
             if "tether-wasi-http" in wrps else "") + ".\n")

    if conc:
        w("## Concurrency: in-flight requests whose guests sleep\n")
        w("`target/release/load`: each of N clients keeps one request in flight on its own connection to a "
          f"guest that sleeps {conc['guest_sleep_ms'] / 1000:.0f} s (`seed_a`, `max_memory = 16MiB`); the server's "
          "RSS is sampled every 50 ms. Then the same load again, and once every guest is asleep a tenth of "
          "the clients (those that connected last) close at once (one `close()` after another); each aborted request's latency runs "
          "from its own `close()` to its guest being stopped. \"After\" is the RSS once the idle server "
          "has trimmed its heap (it does so after a quiet second, and logs it); \"idle\", the pre-load level, "
          "is taken the same way after one warm-up request (at start-up the server has not yet paged in the "
          "code and the state any first request needs, about 1 MiB). The whole run is repeated "
          "with `KEEP_RESIDENT=0`, which sets the manifest's `keep_resident` to 0. Each setting runs "
          f"{len(conc['runs'])} times; figures are medians over runs (the largest for max). Each guest in "
          "flight holds about seven memory mappings, so 10,000 of them need more than Linux's default "
          "`vm.max_map_count` (65,530; the server warns at start-up): the harness raises it, as one "
          "would on a server (see Machine above).\n")
        w("| keep_resident | clients | answered | time to complete s | RSS idle MiB | RSS peak MiB | RSS after MiB | per in-flight request KiB |")
        w("|---|---|---|---|---|---|---|---|")
        for setting in KEEP_RESIDENT_SETTINGS:
            row = load.get("concurrency" + setting)
            if row:
                per = (row["rss_peak_kib"] - row["rss_idle_kib"]) / row["clients"]
                w(f"| {setting} | {row['clients']:,} | {row['answered']:,} | {row['seconds']:.2f} | {row['rss_idle_kib'] / 1024:.0f} | "
                  f"{row['rss_peak_kib'] / 1024:.0f} | {row['rss_after_kib'] / 1024:.0f} | {per:.0f} |")
        w("\nphp-fpm needs a process per in-flight request: 8.6–9.6 MB RSS each here (the reference).\n")
        if under:
            w("| aborts under load | keep_resident | n | p50 ms | p90 ms | p99 ms | max ms | p99 per run ms |")
            w("|---|---|---|---|---|---|---|---|")
            for setting in KEEP_RESIDENT_SETTINGS:
                for name, side in (("client close → stopped", "client-close-to-stopped"), ("seen → stopped", "seen-to-stopped")):
                    row = load.get("aborts-under-load" + side + setting)
                    if row:
                        w(f"| {name} | {setting} | {int(row['n'])} | {row['p50_us'] / 1e3:.2f} | {row['p90_us'] / 1e3:.2f} | "
                          f"{row['p99_us'] / 1e3:.2f} | {row['max_us'] / 1e3:.2f} | {per_run(row, 'p99_us', 1e-3, 2)} |")
            w("")
            for setting in KEEP_RESIDENT_SETTINGS:
                row = load.get("aborts-under-loadclient-close-to-stopped" + setting)
                if row:
                    w(f"RSS with `keep_resident = {setting}`: {row['rss_idle_kib'] / 1024:.0f} MiB idle, "
                      f"{row['rss_loaded_kib'] / 1024:.0f} MiB loaded, {row['rss_after_kib'] / 1024:.0f} MiB once idle after"
                      f"{rss_kinds(row)}.\n")
        w("With the default `keep_resident` (4 MiB), each pool slot a burst used keeps its dirty pages, up to "
          "that much per linear memory, table and fiber stack, so that the next request on the slot resets them "
          "in place instead of faulting them in again (see the log below, "
          "[Per-request memory reset](#per-request-memory-reset)). Once the server is idle, a "
          "pool whose unused slots hold more than `idle_pool_resident` (32 MiB by default) is given back: the "
          "server loads its routes again from the compile cache into a fresh runtime and the old pool is unmapped "
          "([The idle server gives its instance pool back](#the-idle-server-gives-its-instance-pool-back)). "
          "`keep_resident = 0` gives the memory back after every request instead, at the cost of an "
          "`madvise` and fresh page faults per request.\n")
        for setting in KEEP_RESIDENT_SETTINGS:
            row = load.get("concurrency" + setting)
            if row and row.get("pool_released_kib"):
                w(f"After phase 1 with `keep_resident = {setting}`, the idle server released a pool holding "
                  f"{row['pool_released_kib'] / 1024:.0f} MiB in {row['pool_release_ms']:.1f} ms (median over runs; per run "
                  f"{per_run(row, 'pool_release_ms', 1.0, 1)} ms).\n")

    if cold:
        w("## Cold start\n")
        w(f"bench/run times `tether serve` with {cold['routes']} routes (10 different guests) from spawning the "
          "process to the first answered request, polling the port every millisecond; with a warm compile "
          "cache (every component compiled before) and with an empty one.\n")
        w("| compile cache | runs | median ms | all ms |")
        w("|---|---|---|---|")
        w(f"| warm | {len(cold['warm_ms'])} | {median(cold['warm_ms']):.1f} | {', '.join(f'{x:.0f}' for x in cold['warm_ms'])} |")
        w(f"| empty | {len(cold['cold_ms'])} | {median(cold['cold_ms']):.0f} | {', '.join(f'{x:.0f}' for x in cold['cold_ms'])} |")
        w("")

    w("## Abort detection latency\n")
    w("`target/release/abort_latency`: per trial a fresh connection asks for a guest that sleeps "
      "(`seed_a`) or spins in Wasm (`spin`) for a minute (the `wasi-http` rows: the wasi:http proxy "
      "fixture, sleeping in a pollable or spinning); once the guest logged its start, the client "
      "takes a CLOCK_MONOTONIC timestamp and closes (FIN and RST alternating). The server logs the "
      "CLOCK_MONOTONIC time at which it saw the guest stopped. *client close → stopped* is the "
      "difference (the Go reference's method); *seen → stopped* is the server's own part, from "
      "reading the close to the guest being stopped: for a guest parked in a host call, the kill "
      "itself, which closes the gate the guest is polled through (ARCHITECTURE.md, \"Stopping a "
      "guest\"); for a guest running Wasm, the end of its trap. `http` is a direct connection; `nginx-fastcgi` "
      "goes through nginx (1 worker, defaults: `fastcgi_ignore_client_abort off`) to Tether's "
      "FastCGI Unix socket, so it includes nginx noticing its client and closing the upstream link "
      "(70–130 µs in the reference's packet captures). The program runs "
      f"{len(next(iter(lat.values()))['runs'])} times; figures are medians over runs (the largest for max).\n")
    w("| path | guest | span | n per run | p50 µs | p90 µs | p99 µs | max µs | p99 per run µs |")
    w("|---|---|---|---|---|---|---|---|---|")
    for (via, guest, side), row in lat.items():
        w(f"| {via} | {guest} | {side.replace('-', ' ')} | {int(row['n'])} | {row['p50_us']:.0f} | {row['p90_us']:.0f} | {row['p99_us']:.0f} | {row['max_us']:.0f} | {per_run(row, 'p99_us')} |")
    w("\nFor comparison, measured on this machine (../shared/reference/go-nethttp/RESULTS.md): Go's "
      "net/http cancels a waiting handler's context at p50 126 µs / p99 179 µs (FIN), cannot stop a "
      "spinning handler at all (a cooperative check gets p99 3.5 ms, 34 ms with GOMAXPROCS=1), and "
      "misses the close when the handler has not read its body or a pipelined request arrived "
      "first; Tether traps the guest in all of those cases (tests/tests/abort.rs).\n")

    section("measurements")
    assert tuple(sections) == GENERATED, tuple(sections)

    if not REPORT.exists():
        raise SystemExit(f"{REPORT.name} is missing: it holds hand-written text too; restore it (git checkout) first")
    text = splice(REPORT.read_text(), sections)
    REPORT.write_text(text)
    print(f"wrote the generated sections of {REPORT.name} ({', '.join(GENERATED)})")
    broken = broken_anchors(text)
    if broken:
        print(f"warning: {REPORT.name} links to headings that are gone: {', '.join('#' + a for a in broken)}", file=sys.stderr)

if __name__ == "__main__":
    main()
