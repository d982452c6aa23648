"""One module per step of Algorithm 1 (Stage 1 and Stage 2) and of the offline profile."""
