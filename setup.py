"""Distribution ``drover``: a batch engine for recorded browser flows over CDP."""
from setuptools import find_packages, setup

setup(
    name="drover",
    version="0.1.0",
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
        ],
        "ray": ["ray>=2.9"],
        "peer": ["playwright>=1.40"],
    },
    entry_points={"console_scripts": ["drover=engine.cli.main:main"]},
)
