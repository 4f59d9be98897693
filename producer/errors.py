"""The producer's exception hierarchy: one root, specific subclasses under it."""


class ProducerError(Exception):
    """Root of every error the producer raises on purpose."""


class ConfigError(ProducerError):
    """The configuration is invalid; the message names the setting."""


class ExchangeProtocolError(ProducerError):
    """The exchange sent something the protocol does not allow (e.g. an `error` frame)."""


class BackfillError(ProducerError):
    """A REST backfill request failed in a way retrying will not fix."""


class PublishError(ProducerError):
    """Records could not be delivered to Kinesis within the retry budget."""
