"""The store simulator: floor plan and cameras (world), customers (agents), detector noise
(detector), frames (render), ground truth (truth). ``scripts/generate_sample_data.py`` is its CLI."""
