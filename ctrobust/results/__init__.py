"""What a run measured: cells, results, evidence, uncertainty, and the store that keeps them."""
