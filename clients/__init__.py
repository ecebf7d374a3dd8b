"""Stream clients: frame sources, the async Triton gRPC client and the runner.

    python -m clients.run --config configs/app_config.yaml

Data flow per stream: source -> pending queue (backpressure policy) -> JPEG + gRPC to the
``retail_pipeline`` ensemble (bounded in flight) -> reorder by send order -> tracker ->
analytics -> sinks.
"""
