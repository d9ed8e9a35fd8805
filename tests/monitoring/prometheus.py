"""A real Prometheus (Debian's `prometheus` package) for the tests: our own process on a free loopback port, its
TSDB in a temp dir, a generated config scraping the given targets every second. The package's own service is
never used. `python -m tests.monitoring.prometheus` installs the package when missing (scripts/run-tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.packaged import PackagedServer, PackageUnavailable, ensure_binaries, version_of, which
from tests.waiting import eventually

T = TypeVar("T")
PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus"}
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "tasques.json"


def binary(name: str) -> Path:
    ensure_binaries(PACKAGES)
    found = which(name)
    if found is None:
        raise PackageUnavailable(f"{name} not found (apt-get install prometheus)")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("promtool")), *args], capture_output=True, text=True, check=False, cwd=REPO)


class PrometheusError(AssertionError):
    """The HTTP API answered with an error (a bad expression, for one)."""


class Prometheus(PackagedServer):
    name = "prometheus"

    def __init__(self, log_path: Path, targets: Sequence[str], rule_files: Sequence[Path] = ()) -> None:
        super().__init__(log_path)
        self.targets = list(targets)
        self.rule_files = list(rule_files)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        exe = binary("prometheus")
        self.version = version_of(exe)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": "tasques", "static_configs": [{"targets": self.targets}]}],
        }
        config_path = self.dir / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        args = [f"--config.file={config_path}", f"--storage.tsdb.path={self.dir / 'data'}"]
        args += [f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self._spawn([str(exe), *args])
        self._wait_until(self._ready, within=30)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """The `data` of GET /api/v1/<path>; an error answer (HTTP 400/422 with status "error") raises."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (a scalar answer comes back as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")

    def value(self, expr: str) -> float | None:
        """The single sample of `expr` (None: no sample); more than one is an error."""
        result = self.query(expr)
        if len(result) > 1:
            raise PrometheusError(f"{expr}: {len(result)} samples, wanted one: {result}")
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, what: str, probe: Callable[[], T], until: Callable[[T], bool] = bool, within: float = 20.0) -> T:
        """Poll `probe` until `until` holds for its answer; after `within` seconds fail showing the last answer."""
        return eventually(f"Prometheus did not show {what}", probe, until, within, every=0.2)


if __name__ == "__main__":
    try:
        print(f"prometheus {version_of(binary('prometheus'))}: {which('prometheus')}, {which('promtool')}")
    except PackageUnavailable as e:
        sys.exit(f"prometheus: {e}")
