"""The product's settings with one bench-only URL added (bench/limit_urls.py): the limit the
enrollment benchmark compares against. Never used outside the benchmarks."""

from skilltrial.settings import *  # noqa: F403 - the product's settings, unchanged

ROOT_URLCONF = "bench.limit_urls"
