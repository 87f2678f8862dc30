"""Data: sources, download, safe extraction, robust decoding, ingest (data/raw), preprocess (TFRecord
shards and stats), and the tf.data input pipeline for training and evaluation."""
