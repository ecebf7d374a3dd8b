"""Retail analytics: tracking, zones, journeys, queues, heatmaps, footfall, alerts, sinks.

Every stage is a plain object with a small typed interface: the tracker takes
arrays, the analytics take tracks, the sinks take records (``analytics.records``).
"""
