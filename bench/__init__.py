"""The benchmark suite of issue 7: cold start, engine overhead, AWS round trips, latency, throughput, memory.

Every figure is measured against a baseline taken in the same run and reported as a ratio; timings
are medians over interleaved repeats, because the machines this runs on are shared and noisy.
Run it with ``make bench`` (full sizes) or ``make bench-smoke`` (tiny sizes, never judged on timings).
"""

__all__: list[str] = []
