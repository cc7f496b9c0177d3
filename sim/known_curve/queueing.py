"""The known-curve server's open-loop truth: what queueing theory says its p99 is under Poisson arrivals.

With `--contention-ms 0` the server is c workers (`--workers`) serving one request each in a service
time S of mean `base_ms + item_ms x batch`, constant or exponential (`--distribution`), first come first
served, with an unlimited queue in front (gRPC's thread pool is far larger than the workers). Under
Poisson arrivals of rate lambda that is the M/M/c or the M/D/c queue, and the response time T = W + S
(W: the wait for a worker) has a known distribution:

- M/M/c, in closed form: a request waits with the Erlang C probability C(c, a), a = lambda x E[S], and
  then for an exponential time of rate c mu - lambda, so P(T > t) = (1 - C) e^(-mu t) + C P(E1 + E2 > t)
  with E1 ~ Exp(mu), E2 ~ Exp(c mu - lambda) (a hypoexponential tail).
- M/D/c has no closed form that is short to write; its p99 is computed from the exact FCFS recursion
  of a c-server queue (Kiefer and Wolfowitz's workload vector) over a fixed-seed Poisson stream, long
  enough that the sampling error of the 99th percentile is under 1 % (a test checks the recursion
  against the M/M/c closed form).

`open_loop_capacity` inverts either for the budget: the highest rate whose p99 stays within it, in
inferences per second, which is what an open-loop capacity search of that server must find (less the
few milliseconds that gRPC and Python add to every request, which the tests' tolerance states).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable

QUANTILE = 0.99
SIMULATED_REQUESTS = 400_000


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with OFFERED = lambda x E[S] < SERVERS."""
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    term, total = 1.0, 1.0  # a^k / k!, summed for k < c, computed stably
    for k in range(1, servers):
        term *= offered / k
        total += term
    last = term * offered / servers  # a^c / c!
    waiting = last * servers / (servers - offered)
    return waiting / (total + waiting)


def mmc_tail(t: float, rate: float, servers: int, mean_s: float) -> float:
    """P(T > t) of the M/M/c response time (wait plus service)."""
    mu = 1 / mean_s
    theta = servers * mu - rate
    waits = erlang_c(servers, rate * mean_s)
    service = math.exp(-mu * t)
    if abs(theta - mu) < 1e-9 * mu:  # the sum of two exponentials of one rate: an Erlang-2 tail
        both = (1 + mu * t) * service
    else:
        both = (theta * service - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - waits) * service + waits * both


def mmc_p99(rate: float, servers: int, mean_s: float, quantile: float = QUANTILE) -> float:
    """The QUANTILE of the M/M/c response time, seconds (infinite at or past saturation)."""
    if rate >= servers / mean_s:
        return math.inf
    return _invert(lambda t: mmc_tail(t, rate, servers, mean_s), 1 - quantile, mean_s)


def mdc_p99(
    rate: float, servers: int, service_s: float, quantile: float = QUANTILE, requests: int = SIMULATED_REQUESTS
) -> float:
    """The QUANTILE of the M/D/c response time, seconds, from the exact FCFS recursion (module doc)."""
    if rate >= servers / service_s:
        return math.inf
    return simulated_p99(rate, servers, lambda _: service_s, quantile, requests)


def simulated_p99(
    rate: float,
    servers: int,
    service: Callable[[random.Random], float],
    quantile: float = QUANTILE,
    requests: int = SIMULATED_REQUESTS,
    seed: int = 20261201,
) -> float:
    """The QUANTILE of the response time of a FCFS c-server queue under Poisson arrivals of RATE, with
    service times drawn by SERVICE: each request starts when it has arrived and the earliest of the
    workers is free (Kiefer-Wolfowitz), the first tenth discarded as warm-up."""
    rng = random.Random(seed)
    free_at = [0.0] * servers
    now, responses = 0.0, []
    warm_up = requests // 10
    for n in range(requests + warm_up):
        now += rng.expovariate(rate)
        start = max(now, heapq.heappop(free_at))
        done = start + service(rng)
        heapq.heappush(free_at, done)
        if n >= warm_up:
            responses.append(done - now)
    responses.sort()
    return responses[min(len(responses) - 1, math.ceil(quantile * len(responses)) - 1)]


def _invert(tail: Callable[[float], float], target: float, scale: float) -> float:
    """The t at which the decreasing TAIL falls to TARGET (bisection, to a microsecond's precision)."""
    lo, hi = 0.0, scale
    while tail(hi) > target:
        hi *= 2
    while hi - lo > 1e-7:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > target else (lo, mid)
    return hi


def open_loop_capacity(
    servers: int, mean_s: float, budget_s: float, distribution: str, batch: int = 1, precision: float = 0.001
) -> float:
    """Inferences per second of the highest Poisson arrival rate whose p99 is within BUDGET_S, for c
    SERVERS of mean service MEAN_S (a request of BATCH items); 0 when even an idle server misses it."""
    p99 = mmc_p99 if distribution == "exponential" else mdc_p99
    if distribution not in ("exponential", "constant"):
        raise ValueError(f"distribution must be constant or exponential, not {distribution!r}")
    saturation = servers / mean_s
    lo, hi = 0.0, saturation
    if p99(saturation * 1e-6, servers, mean_s) > budget_s:
        return 0.0
    while hi - lo > precision * saturation:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p99(mid, servers, mean_s) <= budget_s else (lo, mid)
    return lo * batch
