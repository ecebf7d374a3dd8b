"""Code that runs inside Triton (python backend) and the same processing in-process.

`preprocess` and `postprocess` hold the pipeline's logic once: the python-backend
models in `model_repository/` are thin adapters over them, and benchmarks/tests call
them directly.
"""
