"""Stream clients: the application (frame sources, the async Triton gRPC client, the runner).

    python -m clients.run --config configs/app_config.yaml      (the CLI: clients/run.py)
    from clients.app import prepare, run_app                    (the same run, in-process)

Data flow per stream: source -> pending queue (backpressure policy) -> JPEG + gRPC to the
``retail_pipeline`` ensemble (bounded in flight) -> reorder by send order -> tracker ->
analytics -> sinks.
"""
