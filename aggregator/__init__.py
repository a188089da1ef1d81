"""aggregator: medical-device security advisories and recalls, matched to the devices you use."""

__version__ = "0.1.0"
