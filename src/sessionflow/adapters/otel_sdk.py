"""The OpenTelemetry SDK configured from the standard ``OTEL_*`` environment variables, by the SDK itself.

sessionflow has no configuration code of its own for exporters, samplers or resources: :func:`configure_sdk`
hands the whole job to the SDK's environment-driven configurator — the one ``opentelemetry-instrument`` and
``opentelemetry-distro`` run —, which reads ``OTEL_TRACES_EXPORTER`` (``console``, ``otlp``, ``none``...),
``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, the ``OTEL_EXPORTER_OTLP_*`` variables and
``OTEL_CONFIG_FILE``, and sets the global tracer, meter and logger providers.

The SDK publishes that configurator only under a private name (``opentelemetry.sdk._configuration``,
``_OTelSDKConfigurator``, whose documented users are the distros): this module is the one place that names it,
and ``tests/tracing/test_otel_sdk.py`` fails if a new SDK moves it. Needs ``opentelemetry-sdk``; imported only
when a process asks for the SDK (see :mod:`sessionflow.adapters.otel_env`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ConfiguredSdk", "configure_sdk"]


@dataclass(frozen=True)
class ConfiguredSdk:
    """The global providers :func:`configure_sdk` set: :meth:`shutdown` flushes and closes them."""

    providers: tuple[Any, ...]

    def shutdown(self) -> None:
        """Export what the providers still hold (the batch span processor's queue) and close them."""
        for provider in self.providers:
            stop = getattr(provider, "shutdown", None)
            if callable(stop):
                stop()


def configure_sdk() -> ConfiguredSdk:
    """Configure the SDK from the ``OTEL_*`` variables of ``os.environ`` and return the providers it set.

    Raises :class:`ImportError` when ``opentelemetry-sdk`` (or its configurator) is missing, and whatever the
    SDK raises for a configuration it cannot honour (an exporter named but not installed: ``RuntimeError``)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    _OTelSDKConfigurator().configure()  # type: ignore[no-untyped-call]  # the SDK leaves it untyped
    from opentelemetry import _logs

    return ConfiguredSdk((trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()))
