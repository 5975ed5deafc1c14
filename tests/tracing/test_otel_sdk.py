"""The SDK's own environment-driven configuration, which ``sessionflow.adapters.otel_sdk`` wraps: the private
name it imports is still there, and the providers it sets are those shut down (their spans flushed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tracing.console import console_spans, otel_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdk_still_has_the_configurator_the_adapter_uses() -> None:
    """``opentelemetry.sdk._configuration._OTelSDKConfigurator`` is private to the SDK: if a release moves it,
    this fails, and ``sessionflow.adapters.otel_sdk`` must follow."""
    from opentelemetry.sdk._configuration import _BaseConfigurator, _OTelSDKConfigurator

    assert issubclass(_OTelSDKConfigurator, _BaseConfigurator)
    assert callable(_OTelSDKConfigurator().configure)


def test_the_environment_configures_the_providers_and_shutdown_flushes_them(tmp_path: Path) -> None:
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sessionflow.adapters.otel_sdk import configure_sdk
sdk = configure_sdk()
provider = trace.get_tracer_provider()
assert isinstance(provider, TracerProvider), provider
assert sdk.providers[0] is provider
sampler = provider.sampler.get_description()
with provider.get_tracer("t").start_as_current_span("queued until shutdown"):
    pass
print("before shutdown")
sdk.shutdown()
print("sampler:", sampler)
"""
    env = otel_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="svc",
                   OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test", OTEL_TRACES_SAMPLER="traceidratio",
                   OTEL_TRACES_SAMPLER_ARG="1.0", OTEL_BSP_SCHEDULE_DELAY="60000")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split("before shutdown", 1)
    assert console_spans(before) == []  # batched: exported by the shutdown
    [span] = console_spans(after)
    assert span["name"] == "queued until shutdown"
    assert span["resource"]["attributes"]["service.name"] == "svc"
    assert span["resource"]["attributes"]["deployment.environment"] == "test"
    assert "TraceIdRatioBased{1.0}" in after
