"""Interactive segmentation: datasets, region selectors, clicking robots, click encodings,
the evaluation loop, NoC metrics and weight-free baselines (reference/iis.md's protocol)."""
