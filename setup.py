"""Distribution ``drover-engine`` (``drover`` on PyPI is another project): a batch engine for recorded browser
flows over CDP.  The import names stay ``engine``, ``navigation``, ``coordination`` and ``bench``; the console
script is ``drover``."""
import re
from pathlib import Path

from setuptools import find_packages, setup

# One source for the name and version (engine/cli/version.py, which --version prints); read, not imported,
# so building needs none of the package's dependencies.
_VERSION_FILE = (Path(__file__).parent / "engine" / "cli" / "version.py").read_text(encoding="utf-8")


def _constant(name: str) -> str:
    m = re.search(rf'^{name} = "([^"]+)"$', _VERSION_FILE, re.M)
    if m is None:
        raise RuntimeError(f"engine/cli/version.py does not define {name}")
    return m.group(1)


setup(
    name=_constant("DISTRIBUTION"),
    version=_constant("VERSION"),
    description="Run recorded Chrome DevTools Recorder flows on many headless "
    "Chromium browsers in parallel, with the numbers to prove a batch is safe.",
    python_requires=">=3.11",
    packages=find_packages(include=["engine*", "coordination*", "navigation*", "bench*"]),
    include_package_data=True,
    package_data={"navigation": ["js/*.js", "examples/*.json"], "navigation.fixture_site": ["static/*", "static/**/*"],
                  "engine.evidence.report": ["page.html", "report.css"]},
    install_requires=[
        "websocket-client>=1.6",
        "orjson>=3.8",
        "psutil>=5.9",
        "filelock>=3.30",
        "python-json-logger>=2.0",
    ],
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-benchmark>=4.0",
            "pytest-timeout>=2.1",
            "hypothesis>=6.80",
            "ray>=2.9",  # the Ray backend's tests run in CI on a local multi-node cluster
            "junitparser>=3.1",  # a real JUnit consumer reads run --junit files in the tests
            "prometheus-client>=0.17",  # its text parser reads --metrics files in the tests
            "playwright>=1.40",  # bench peer's smoke test; never `playwright install`: it drives the system Chromium
        ],
        "ray": ["ray>=2.9"],
        "peer": ["playwright>=1.40"],
    },
    entry_points={"console_scripts": [f"{_constant('CONSOLE_SCRIPT')}=engine.cli.main:console_script"]},
)
