"""scripts/eval.py's pieces: data sets and splits (data), the baselines and
the metrics (recommenders), BG/NBD and Gamma-Gamma (clv), the real pipeline
(pipeline). Debian's /usr/bin/python3 with python3-numpy, python3-scipy,
python3-protobuf, python3-confluent-kafka and python3-redis."""
