import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# pytest -n 2 on 2 cores: one thread per worker (tiny models slow down ~30x when threads oversubscribe)
os.environ.setdefault("OMP_NUM_THREADS", "1")
