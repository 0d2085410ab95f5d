"""The load test of ``bench/load_bench.py`` at CI scale against the live test daemon.

8 concurrent API clients × 3 rounds of create → start → exec → logs → rm -f (after a warm-up
round), then 30 containers running at once: no request fails, and once every container is gone
the daemon's fds, the engine's processes, mounts, cgroups and bridge ports are back at the
baseline taken after the warm-up. The daemon's RSS may grow, but boundedly. No timing is asserted
(latencies are the bench's business).
"""

from __future__ import annotations

import pytest
from bench.load_bench import LOG_ERRORS, Target, count_log_errors, daemon_bridge, run_load

from tests.conftest import LiveDaemon

pytestmark = pytest.mark.root

CLIENTS, ROUNDS, ITERATIONS, CONTAINERS = 8, 3, 3, 30
# requests per cycle: create, start, exec create, exec start, logs (at least once), rm -f
PER_CYCLE = 6


@pytest.mark.timeout(900)
def test_concurrent_clients_and_many_containers_fail_nothing_and_leak_nothing(daemon: LiveDaemon) -> None:
    # the default (bridge) network: veths and addresses are part of the churn
    target = Target("dockyard", daemon.sock, daemon.proc.pid, (daemon.data_root, daemon.exec_root),
                    bridge=daemon_bridge(daemon.proc.args), network="bridge")
    errors_before = count_log_errors(daemon.log, LOG_ERRORS)

    res = run_load(target, clients=CLIENTS, rounds=ROUNDS, iterations=ITERATIONS, containers=CONTAINERS)

    assert res.tracker.failures == []
    assert res.phase1_cycles == CLIENTS * ROUNDS * ITERATIONS
    assert res.tracker.requests >= res.phase1_cycles * PER_CYCLE + 3 * CONTAINERS
    assert res.phase2[2] == CONTAINERS, "not every container of phase 2 was listed running"
    running = next(s for s in res.snapshots if s.label.endswith("running"))
    assert running.containers == CONTAINERS and running.container_procs >= CONTAINERS
    assert res.final is not None and res.baseline is not None
    assert res.leaks == {}, f"left behind after every container was removed: {res.leaks}\n" + \
        "\n".join(map(str, res.snapshots))
    # memory: a warm daemon may still grow a little (allocator, caches), never by the workload
    assert res.rss_growth_kb() < 32 * 1024, res.snapshots
    assert res.final.daemon_rss_kb - res.baseline.daemon_rss_kb < 64 * 1024, res.snapshots
    assert count_log_errors(daemon.log, LOG_ERRORS) == errors_before, daemon.log.read_text()[-5000:]
