"""The tiers and the workers of ``make test`` (tests/conftest.py): which tests go together."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.conftest import run_order, worker_group


@dataclass
class Item:
    nodeid: str
    fixturenames: list[str] = field(default_factory=list)
    loop: bool = False

    def get_closest_marker(self, name: str):
        return name if name == "loop" and self.loop else None


def test_a_modules_tests_share_a_worker_and_checkov_runs_on_one():
    a1, a2 = Item("tests/a.py::test_one"), Item("tests/a.py::test_two[x]")
    c1 = Item("tests/k8s/test_c.py::test_policy", ["checkov_reports"])
    c2 = Item("tests/k8s/test_d.py::test_chart", ["tmp_path", "checkov_reports"])
    assert worker_group(a1) == worker_group(a2) == "tests/a.py"
    assert worker_group(c1) == worker_group(c2) == "checkov"
    assert worker_group(Item("tests/k8s/test_d.py::test_other")) == "tests/k8s/test_d.py"


def test_the_modules_that_use_the_servers_share_one_worker():
    servers = {"tests/s1.py", "tests/s2.py"}
    groups = {worker_group(Item(f"{module}::t"), servers)
              for module in ("tests/s1.py", "tests/s2.py")}
    assert groups == {"server"}
    assert worker_group(Item("tests/a.py::t"), servers) == "tests/a.py"


def test_the_model_loops_modules_run_first_in_their_order():
    items = [Item("tests/a.py::t1"), Item("tests/loop.py::t1", loop=True),
             Item("tests/b.py::t1"), Item("tests/loop.py::t2"), Item("tests/a.py::t2"),
             Item("tests/e2e.py::t1", loop=True)]
    ordered = [item.nodeid for item in run_order(items)]
    assert ordered == ["tests/loop.py::t1", "tests/loop.py::t2", "tests/e2e.py::t1",
                       "tests/a.py::t1", "tests/b.py::t1", "tests/a.py::t2"]


def test_the_servers_own_checks_run_before_the_tests_that_use_the_servers():
    servers = {"tests/loop.py", "tests/test_servers.py"}
    items = [Item("tests/loop.py::t1", loop=True), Item("tests/a.py::t1"),
             Item("tests/test_servers.py::t1"), Item("tests/test_servers.py::t2")]
    ordered = [item.nodeid for item in run_order(items, servers)]
    assert ordered == ["tests/test_servers.py::t1", "tests/test_servers.py::t2",
                       "tests/loop.py::t1", "tests/a.py::t1"]
